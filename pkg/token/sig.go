package token

// appendASN1Signature appends to dst the ASN.1 DER form (RFC 3279
// Ecdsa-Sig-Value: SEQUENCE { r INTEGER, s INTEGER }) of the ECDSA
// signature r||s, each of n bytes (the JWS form, RFC 7518 §3.4), as
// crypto/ecdsa.VerifyASN1 takes it. n is at most 66 (P-521), so the
// sequence is under 256 bytes and both lengths fit the short or the
// one-byte long form.
func appendASN1Signature(dst, rs []byte) []byte {
	n := len(rs) / 2
	r, s := asn1Integer(rs[:n]), asn1Integer(rs[n:])
	body := 2 + len(r) + 2 + len(s)
	if r[0]&0x80 != 0 {
		body++
	}
	if s[0]&0x80 != 0 {
		body++
	}
	dst = append(dst, 0x30)
	if body >= 0x80 {
		dst = append(dst, 0x81)
	}
	dst = append(dst, byte(body))
	dst = appendASN1Integer(dst, r)
	return appendASN1Integer(dst, s)
}

// asn1Integer strips the leading zero bytes of a big-endian unsigned
// integer, keeping one byte for zero.
func asn1Integer(b []byte) []byte {
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

// appendASN1Integer appends the DER INTEGER of the unsigned, minimal b: a
// zero byte first when its top bit is set, so that it reads as positive.
func appendASN1Integer(dst, b []byte) []byte {
	l := len(b)
	pad := b[0]&0x80 != 0
	if pad {
		l++
	}
	dst = append(dst, 0x02, byte(l))
	if pad {
		dst = append(dst, 0)
	}
	return append(dst, b...)
}
