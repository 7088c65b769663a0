package token

// b64URLValue is each byte's value in the base64url alphabet, -1 outside
// it: the tests' own table, independent of internal/b64seg's.
var b64URLValue = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(b64Alphabet); i++ {
		t[b64Alphabet[i]] = int8(i)
	}
	return t
}()
