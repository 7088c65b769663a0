package oauthflow

// MaxReturnPath is the longest rd accepted, for the external tests.
const MaxReturnPath = maxReturnPath
