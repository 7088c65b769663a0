package mcp

import (
	"net/netip"
	"strings"
)

// appendAuthority appends the canonical host and port.
func appendAuthority(out []byte, auth string, sc scheme, glob bool) ([]byte, string) {
	if strings.IndexByte(auth, '@') >= 0 {
		return out, `user information ("@") in the authority`
	}
	host, port, hasPort := auth, "", false
	if strings.HasPrefix(auth, "[") {
		end := strings.IndexByte(auth, ']')
		if end < 0 {
			return out, "unterminated IPv6 address"
		}
		host = auth[:end+1]
		if after := auth[end+1:]; after != "" {
			if after[0] != ':' {
				return out, "characters after an IPv6 address"
			}
			port, hasPort = after[1:], true
		}
	} else if i := strings.IndexByte(auth, ':'); i >= 0 {
		host, port, hasPort = auth[:i], auth[i+1:], true
	}
	if hasPort && sc.file {
		return out, "a port in a file URI"
	}
	if hasPort && host == "" {
		return out, "a port without a host"
	}

	var why string
	if strings.HasPrefix(host, "[") {
		out, why = appendIPv6(out, host[1:len(host)-1])
	} else {
		out, why = appendHost(out, host, sc, glob)
	}
	if why != "" || !hasPort || port == "" {
		return out, why
	}
	for i := 0; i < len(port); i++ {
		if !isDigit(port[i]) {
			return out, "port is not a number"
		}
	}
	p := strings.TrimLeft(port, "0")
	if p == "" {
		p = "0"
	}
	if len(p) > 5 || (len(p) == 5 && p > "65535") {
		return out, "port above 65535"
	}
	if p != sc.defaultPort {
		out = append(out, ':')
		out = append(out, p...)
	}
	return out, ""
}

// appendHost appends a registered name or IPv4 address, lower-cased.
func appendHost(out []byte, host string, sc scheme, glob bool) ([]byte, string) {
	if host == "" {
		if sc.special && !sc.file {
			return out, "empty host"
		}
		return out, ""
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || (glob && (c == '*' || c == '?'))) {
			return out, "a character other than a letter, digit, \"-\", \"_\" or \".\" in the host"
		}
	}
	h := strings.TrimSuffix(host, ".")
	if h == "" || h[0] == '.' || h[len(h)-1] == '.' || strings.Contains(h, "..") {
		return out, "empty label in the host"
	}
	last := h[strings.LastIndexByte(h, '.')+1:]
	if numericLabel(last) && !dottedDecimal(h) {
		return out, "an IPv4 address not written as four decimal numbers (WHATWG reads hex, octal and short forms)"
	}
	if sc.file && len(h) == len("localhost") && strings.EqualFold(h, "localhost") {
		return out, ""
	}
	for i := 0; i < len(h); i++ {
		out = append(out, lower(h[i]))
	}
	return out, ""
}

// numericLabel reports whether WHATWG's "ends in a number" holds for the
// last label: all digits, or "0x" followed by hex digits.
func numericLabel(l string) bool {
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		for i := 2; i < len(l); i++ {
			if !isHex(l[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(l); i++ {
		if !isDigit(l[i]) {
			return false
		}
	}
	return l != ""
}

// dottedDecimal reports whether h is a.b.c.d, each 0-255 without leading
// zeros.
func dottedDecimal(h string) bool {
	for part := 0; part < 4; part++ {
		i := strings.IndexByte(h, '.')
		if part == 3 {
			i = len(h)
		} else if i < 0 {
			return false
		}
		n := h[:i]
		if n == "" || len(n) > 3 || (len(n) > 1 && n[0] == '0') {
			return false
		}
		v := 0
		for j := 0; j < len(n); j++ {
			if !isDigit(n[j]) {
				return false
			}
			v = v*10 + int(n[j]-'0')
		}
		if v > 255 {
			return false
		}
		if part < 3 {
			h = h[i+1:]
		}
	}
	return true
}

// appendIPv6 appends "[addr]" in the form WHATWG serialises: lower-case
// hex, the first longest run of two or more zero pieces as "::", no
// embedded IPv4.
func appendIPv6(out []byte, inner string) ([]byte, string) {
	if strings.ContainsAny(inner, "%*?") {
		return out, "IPv6 address with a zone or a glob"
	}
	a, err := netip.ParseAddr(inner)
	if err != nil || !a.Is6() {
		return out, "invalid IPv6 address"
	}
	b := a.As16()
	var p [8]uint16
	for i := range p {
		p[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	zs, zn := -1, 1 // longest zero run: start and length (runs of 1 are not compressed)
	for i := 0; i < 8; {
		if p[i] != 0 {
			i++
			continue
		}
		j := i
		for j < 8 && p[j] == 0 {
			j++
		}
		if j-i > zn {
			zs, zn = i, j-i
		}
		i = j
	}
	out = append(out, '[')
	for i := 0; i < 8; i++ {
		if i == zs {
			out = append(out, ':', ':')
			i += zn - 1
			continue
		}
		if i > 0 && i != zs+zn {
			out = append(out, ':')
		}
		out = appendHex16(out, p[i])
	}
	return append(out, ']'), ""
}

func appendHex16(out []byte, v uint16) []byte {
	started := false
	for shift := 12; shift >= 0; shift -= 4 {
		d := byte(v>>uint(shift)) & 0xf
		if d != 0 || started || shift == 0 {
			out = append(out, "0123456789abcdef"[d])
			started = true
		}
	}
	return out
}
