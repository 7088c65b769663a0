package ssf_test

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/ssftest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/ssf"
)

// stepper paces a receiver's polls: a poll that asks to wait (d > 0) is
// reported on idle, and waits until the test calls step.
type stepper struct {
	idle chan time.Duration
	next chan struct{}
}

func newStepper() *stepper {
	return &stepper{idle: make(chan time.Duration), next: make(chan struct{})}
}

func (s *stepper) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case s.idle <- d:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-s.next:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitIdle waits until the poller waits, and returns how long it asked to.
func (s *stepper) waitIdle(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-s.idle:
		return d
	case <-t.Context().Done():
		t.Fatal("the poller never waited")
		return 0
	}
}

func (s *stepper) step() { s.next <- struct{}{} }

// RFC 8936 polling: each polled SET is judged as a pushed one; applied
// ones are acknowledged with the next poll, refused ones reported with
// their RFC 8935 code, ones that cannot be judged now (503) neither, so
// the transmitter delivers them again; a redelivery of an applied SET is
// acknowledged again without a second effect.
func TestPoll(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClockAt(t0)
	tr := ssftest.New(t, ssftest.Options{Audience: audience, Now: clock.Now, PollToken: "poll-token"})
	other := ssftest.New(t, ssftest.Options{Audience: audience, Now: clock.Now})
	rec := &recorder{}
	recv, err := ssf.New(ssf.Options{
		Audience: audience,
		Transmitters: []ssf.Transmitter{
			{Issuer: tr.Issuer, Poll: &ssf.Poll{Endpoint: tr.PollEndpoint(), Token: "poll-token", Interval: time.Minute, MaxEvents: 2}},
			{Issuer: other.Issuer},
		},
		Revoker: rec,
		Now:     clock.Now,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	revoke := tr.Sign(t, ssftest.SET{Event: ssf.EventSessionRevoked, Subject: ssftest.Complex(nil, ssftest.Opaque("sess-1"))})
	verify := tr.Sign(t, ssftest.SET{Event: ssf.EventVerification})
	wrongAud := tr.Sign(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u"), Audience: "https://else"})
	othersSET := other.Sign(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u")})
	tr.Queue(t, revoke, verify, wrongAud, othersSET)
	tr.QueueAs("not-its-jti", tr.Sign(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u")}))

	st := newStepper()
	ssf.SetPollWait(recv, st.wait)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { recv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// Polled two at a time, at once while there are answers to send, then
	// after the interval.
	if d := st.waitIdle(t); d != time.Minute {
		t.Fatalf("waits %s once the queue is drained; want the interval", d)
	}
	if tr.Polls() != 4 {
		t.Fatalf("%d polls; want 4 (two SETs, two, one, none)", tr.Polls())
	}
	acks := tr.Acks()
	sort.Strings(acks)
	want := []string{jtiOf(t, revoke), jtiOf(t, verify)}
	sort.Strings(want)
	if !reflect.DeepEqual(acks, want) {
		t.Fatalf("acks %v; want %v", acks, want)
	}
	errs := tr.SETErrs()
	codes := map[string]string{}
	for jti, e := range errs {
		if e.Description == "" {
			t.Errorf("%s: no description", jti)
		}
		codes[jti] = e.Err
	}
	wantCodes := map[string]string{
		jtiOf(t, wrongAud):  ssf.CodeInvalidAudience,
		jtiOf(t, othersSET): ssf.CodeAccessDenied,
		"not-its-jti":       ssf.CodeInvalidRequest,
	}
	if !reflect.DeepEqual(codes, wantCodes) {
		t.Fatalf("setErrs %v; want %v", codes, wantCodes)
	}
	if got := rec.watermarks(); len(got) != 1 || got[0].SessionID != "sess-1" {
		t.Fatalf("watermarks %+v; want sess-1's", got)
	}

	// The revocation cannot be stored: neither acknowledged nor refused,
	// and delivered again once it can.
	rec.fail(errors.New("the shared tier is down"))
	later := tr.Sign(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u-2")})
	tr.Queue(t, later)
	st.step()
	if d := st.waitIdle(t); d != time.Minute {
		t.Fatalf("waits %s after a SET it could not store; want the interval, not a tight loop", d)
	}
	if len(tr.Acks()) != 2 || len(tr.SETErrs()) != 3 {
		t.Fatalf("acks %v errs %v: the SET that could not be stored was answered", tr.Acks(), tr.SETErrs())
	}
	rec.fail(nil)
	st.step()
	st.waitIdle(t)
	if acks := tr.Acks(); len(acks) != 3 || acks[2] != jtiOf(t, later) {
		t.Fatalf("acks %v; want %s last", acks, jtiOf(t, later))
	}
	if got := rec.watermarks(); len(got) != 2 || got[1].Subject != "u-2" {
		t.Fatalf("watermarks %+v; want u-2's second", got)
	}

	// A redelivery of an applied SET: acknowledged, applied once.
	tr.Queue(t, later)
	st.step()
	st.waitIdle(t)
	if acks := tr.Acks(); len(acks) != 4 || acks[3] != jtiOf(t, later) {
		t.Fatalf("acks %v; want %s acknowledged again", acks, jtiOf(t, later))
	}
	if got := rec.watermarks(); len(got) != 2 {
		t.Fatalf("watermarks %+v; want no second effect", got)
	}
}

// A poll the transmitter refuses (a wrong token) is retried after a
// backoff, and nothing it holds is answered.
func TestPollRefused(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClockAt(t0)
	tr := ssftest.New(t, ssftest.Options{Audience: audience, Now: clock.Now, PollToken: "poll-token"})
	recv, err := ssf.New(ssf.Options{
		Audience:     audience,
		Transmitters: []ssf.Transmitter{{Issuer: tr.Issuer, Poll: &ssf.Poll{Endpoint: tr.PollEndpoint(), Token: "wrong"}}},
		Revoker:      &recorder{},
		Now:          clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	st := newStepper()
	ssf.SetPollWait(recv, st.wait)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { recv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	tr.Queue(t, tr.Sign(t, ssftest.SET{Event: ssf.EventVerification}))
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if d := st.waitIdle(t); d != want {
			t.Fatalf("waits %s after a refused poll; want %s", d, want)
		}
		st.step()
	}
	if tr.Polls() != 0 || len(tr.Acks()) != 0 {
		t.Fatalf("%d polls answered, acks %v; want none", tr.Polls(), tr.Acks())
	}
}
