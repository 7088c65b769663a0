package oauthflow

import (
	"context"
	"errors"
	"fmt"
)

// ClientResolverOptions configures [NewClientResolver].
type ClientResolverOptions struct {
	// Store holds the registered clients; nil: registration is off, and only metadata
	// documents identify clients.
	Store *FacadeStore
	// Documents fetches Client ID Metadata Documents; nil: a URL client_id is refused.
	Documents *ClientDocuments
}

// ClientResolver finds the client a client_id names, whichever way it identified itself. It
// is safe for concurrent use.
type ClientResolver struct {
	store *FacadeStore
	docs  *ClientDocuments
}

// NewClientResolver checks o and builds the resolver.
func NewClientResolver(o ClientResolverOptions) (*ClientResolver, error) {
	if o.Store == nil && o.Documents == nil {
		return nil, errors.New("facade: a client resolver needs a store, metadata documents, or both")
	}
	return &ClientResolver{store: o.Store, docs: o.Documents}, nil
}

// ResolveClient returns the client clientID names: a client_id that is an http(s) URL is a
// Client ID Metadata Document's (fetched, or from the cache), any other a registered client's
// (whose life restarts with this use). Errors wrap ErrMalformedClientID, ErrInvalidClient or
// ErrClientUnavailable; [ClientErrorCode] says what to answer. The returned client is the
// caller's to keep.
func (r *ClientResolver) ResolveClient(ctx context.Context, clientID string) (*RegisteredClient, error) {
	switch {
	case clientID == "":
		return nil, fmt.Errorf("%w: empty", ErrMalformedClientID)
	case len(clientID) > MaxClientIDLen:
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformedClientID, MaxClientIDLen)
	}
	for i := 0; i < len(clientID); i++ {
		if c := clientID[i]; c < 0x20 || c > 0x7e {
			return nil, fmt.Errorf("%w: not printable ASCII", ErrMalformedClientID)
		}
	}
	if IsClientIDURL(clientID) {
		if r.docs == nil {
			return nil, fmt.Errorf("%w: metadata documents are not accepted", ErrInvalidClient)
		}
		return r.docs.Client(ctx, clientID)
	}
	if r.store == nil {
		return nil, fmt.Errorf("%w: registration is not offered", ErrInvalidClient)
	}
	c, ok, err := r.store.Client(ctx, clientID)
	switch {
	case errors.Is(err, ErrCorrupt):
		return nil, fmt.Errorf("%w: the stored client does not open", ErrInvalidClient)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrClientUnavailable, err)
	case !ok:
		return nil, fmt.Errorf("%w: not registered, or expired", ErrInvalidClient)
	}
	return c, nil
}
