package ssf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/extauthz/extauthz/internal/refresh"
)

// Poll makes the receiver fetch a transmitter's SETs from its RFC 8936
// polling endpoint, for a gateway the transmitter cannot reach. Its
// pushes, if any, are still received.
type Poll struct {
	// Endpoint is the stream's polling endpoint (required).
	Endpoint string
	// Token, when set, is sent as Authorization: Bearer.
	Token string
	// Interval is the wait between polls that brought nothing (default
	// 30s); after one that brought SETs, or left acknowledgements to send,
	// the next poll is at once.
	Interval time.Duration
	// MaxEvents is how many SETs one poll asks for (default 100).
	MaxEvents int
}

// Defaults of Poll.
const (
	DefaultPollInterval  = 30 * time.Second
	DefaultPollMaxEvents = 100
)

// maxPollResponseBytes bounds a poll's answer whatever MaxEvents says.
const maxPollResponseBytes = 64 << 20

// setError is one SET's refusal in a poll request (RFC 8936 §2.2).
type setError struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

// pollRequest is the body of a poll (RFC 8936 §2.2).
type pollRequest struct {
	MaxEvents         int                 `json:"maxEvents"`
	ReturnImmediately bool                `json:"returnImmediately"`
	Ack               []string            `json:"ack,omitempty"`
	SetErrs           map[string]setError `json:"setErrs,omitempty"`
}

// poller is one transmitter's polling state: the answers not yet sent.
type poller struct {
	tr   *transmitter
	poll Poll
	acks []string
	errs map[string]setError
}

// runPoll polls until ctx ends: at once, then after Interval when a poll
// brought nothing, at once when it brought SETs; a failed poll is retried
// after a backoff from 1s up to Interval. Acknowledgements and refusals
// are sent with the next poll (RFC 8936 §2.2), and kept until a poll
// carrying them succeeds.
func (r *Receiver) runPoll(ctx context.Context, pl *poller) {
	b := refresh.Backoff{Start: time.Second, Limit: max(pl.poll.Interval, time.Second)}
	refresh.Run(ctx, b, r.pollWait, func(ctx context.Context) (time.Duration, error) {
		more, err := r.pollOnce(ctx, pl)
		switch {
		case err != nil:
			r.log.Warn("ssf: poll failed", "transmitter", pl.tr.issuer, "err", err)
			return 0, err
		case more:
			return 0, nil
		}
		return pl.poll.Interval, nil
	})
}

// pollOnce sends one poll with the pending answers and judges the SETs it
// brings. A SET whose event is applied, or was already (a redelivery), is
// acknowledged; one refused is reported with its RFC 8935 code; one that
// cannot be judged now (503) is neither, so that the transmitter delivers
// it again. more reports whether to poll again at once.
func (r *Receiver) pollOnce(ctx context.Context, pl *poller) (more bool, err error) {
	body, err := json.Marshal(pollRequest{MaxEvents: pl.poll.MaxEvents, ReturnImmediately: true, Ack: pl.acks, SetErrs: pl.errs})
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, pl.poll.Endpoint, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if pl.poll.Token != "" {
		req.Header.Set("Authorization", "Bearer "+pl.poll.Token)
	}
	// The token goes to the configured endpoint only.
	c := *r.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		return false, fmt.Errorf("poll: %w", err)
	}
	defer resp.Body.Close()
	limit := min(int64(pl.poll.MaxEvents)*r.maxBytes+64<<10, maxPollResponseBytes)
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	switch {
	case err != nil:
		return false, fmt.Errorf("poll: reading the answer: %w", err)
	case resp.StatusCode != http.StatusOK:
		return false, fmt.Errorf("poll: status %d", resp.StatusCode)
	case int64(len(data)) > limit:
		return false, fmt.Errorf("poll: answer larger than %d bytes", limit)
	}
	// The answers sent have been received.
	pl.acks, pl.errs = nil, nil
	sets, moreAvailable, err := parsePollResponse(data)
	if err != nil {
		return false, fmt.Errorf("poll: %w", err)
	}
	jtis := make([]string, 0, len(sets))
	for jti := range sets {
		jtis = append(jtis, jti)
	}
	sort.Strings(jtis)
	for _, jti := range jtis {
		o := outcome{label: labelNone}
		err := r.process(ctx, sets[jti], jti, &o, func(tr *transmitter) error {
			if tr != pl.tr {
				return fmt.Errorf("%w: polled from transmitter %s, the SET is from another", ErrAccessDenied, pl.tr.issuer)
			}
			return nil
		})
		a := r.observe(ctx, deliveryPoll, &o, err)
		switch {
		case err == nil, errors.Is(err, ErrReplayed):
			// A replay here is a redelivery of a SET whose event was
			// applied (its jti is remembered only then): acknowledged.
			pl.acks = append(pl.acks, jti)
		case a.code == "":
			// 503: not answered, delivered again.
		default:
			if pl.errs == nil {
				pl.errs = map[string]setError{}
			}
			pl.errs[jti] = setError{Err: a.code, Description: description(err)}
		}
	}
	// Polled again at once while there are answers to send; moreAvailable
	// alone does not hurry it: SETs that all came back 503 wait Interval,
	// rather than being fetched again in a tight loop.
	_ = moreAvailable
	return len(pl.acks) > 0 || len(pl.errs) > 0, nil
}

// parsePollResponse reads a poll's answer (RFC 8936 §2.3): sets, an
// object of SETs by jti, and moreAvailable.
func parsePollResponse(data []byte) (map[string]string, bool, error) {
	m, err := strictObject(data)
	if err != nil {
		return nil, false, fmt.Errorf("answer: %v", err)
	}
	var sets map[string]string
	if v, ok := m["sets"]; ok {
		if err := json.Unmarshal(v, &sets); err != nil {
			return nil, false, errors.New("answer: sets is not an object of strings")
		}
	}
	var more bool
	if v, ok := m["moreAvailable"]; ok {
		if err := json.Unmarshal(v, &more); err != nil {
			return nil, false, errors.New("answer: moreAvailable is not a boolean")
		}
	}
	return sets, more, nil
}
