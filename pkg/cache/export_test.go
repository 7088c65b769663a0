package cache

import "time"

// ClockStart is where the tests' clocks (testkit.NewClockAt) start, internal and external: a
// fixed instant, so that failures reproduce. It lives in a _test file so that no build of the
// package carries it.
var ClockStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
