package ssf

import (
	"encoding/json"

	"github.com/extauthz/extauthz/internal/strictjson"
)

// A SET's header and claims are checked strictly before anything is read
// from them, as pkg/token checks access tokens: JSON readers disagree on
// an object that repeats a member (first, last, or refused), on a member
// whose name differs only in case, and on invalid UTF-8, so such a SET is
// refused rather than read one way here and another way by its
// transmitter's audit trail.

// setJSON reads SET headers, claims and poll answers. A SET nests three or
// four levels (events → event → subject → member); 32 is ample.
var setJSON = strictjson.NewReader(32)

// strictObject checks data with internal/strictjson (exactly one JSON
// object, UTF-8, no member repeated at any depth, nesting bounded) and
// returns its top-level members by name.
func strictObject(data []byte) (map[string]json.RawMessage, error) {
	m := make(map[string]json.RawMessage, 8)
	err := setJSON.Members(data, func(name string, value []byte) error {
		m[name] = json.RawMessage(value)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}
