package config

import "time"

// Bounds of the revocation keys.
const (
	minTokenLifetime  = time.Minute
	maxTokenLifetime  = 8760 * time.Hour
	minRevocationSync = time.Second
	maxRevocationSync = time.Hour
)

func (r *Revocation) validate(ch *checker) {
	if d := r.MaxTokenLifetime.D(); d < minTokenLifetime || d > maxTokenLifetime {
		ch.add("revocation.max_token_lifetime", "must be between 1m and 8760h")
	}
	if d := r.SyncInterval.D(); d < minRevocationSync || d > maxRevocationSync {
		ch.add("revocation.sync_interval", "must be between 1s and 1h")
	}
}
