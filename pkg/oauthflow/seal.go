package oauthflow

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
)

// sealer encrypts what this package keeps at rest or hands to a browser: AES-256-GCM under a
// [Key], with a fresh random 96-bit nonce per value and the value's storage key (or, for a
// sealed login state, the key it would have) as additional data. A value is
// nonce || ciphertext || tag; it opens only under the same key and for the same storage key,
// so a value copied to another entry does not open.
//
// pkg/upstream seals its shared cache entries the same way with a helper of its own (a
// version byte and a fixed additional data): the two could become one helper.
type sealer struct{ aead cipher.AEAD }

func newSealer(k Key) (*sealer, error) {
	if k.isZero() {
		return nil, errKeyZero
	}
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, fmt.Errorf("session: %w", err) // names only the key's size
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// sealBytes encrypts pt for the entry at key.
func (s *sealer) sealBytes(key string, pt []byte) []byte {
	return s.aead.Seal(nil, nil, pt, []byte(key)) //nolint:gosec // NewGCMWithRandomNonce draws the nonce itself
}

// openBytes decrypts the value of the entry at key; any failure is ErrCorrupt.
func (s *sealer) openBytes(key string, ct []byte) ([]byte, error) {
	pt, err := s.aead.Open(nil, nil, ct, []byte(key))
	if err != nil {
		return nil, ErrCorrupt
	}
	return pt, nil
}

// sealJSON encrypts v's JSON for the entry at key.
func (s *sealer) sealJSON(key string, v any) ([]byte, error) {
	pt, err := json.Marshal(v)
	if err != nil {
		return nil, errors.New("session: encoding entry") // json's error could quote a value
	}
	ct := s.sealBytes(key, pt)
	clear(pt)
	return ct, nil
}

// openJSON decrypts the entry at key into v; any failure is ErrCorrupt.
func (s *sealer) openJSON(key string, ct []byte, v any) error {
	pt, err := s.openBytes(key, ct)
	if err != nil {
		return err
	}
	err = json.Unmarshal(pt, v)
	clear(pt)
	if err != nil {
		// Authentic but not decodable: written by something else with this key.
		return ErrCorrupt
	}
	return nil
}
