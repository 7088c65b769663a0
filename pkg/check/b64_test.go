package check_test

import "encoding/base64"

func b64(b []byte) string             { return base64.RawURLEncoding.EncodeToString(b) }
func b64dec(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
