package mcp

import "unicode/utf8"

// Match reports whether s matches the glob pattern: '*' matches any run of
// bytes including '/' and '.', '?' matches exactly one UTF-8 character
// (rune), every other byte is literal; "*" matches everything including "".
// There is no escape character and no character class.
//
// Characters are what utf8.DecodeRuneInString yields, so a byte that is not
// part of valid UTF-8 counts as one character. '*' grows one character at a
// time; for a valid UTF-8 pattern this is the same as any run of bytes, since
// literal characters and '?' can only match at character boundaries.
//
// Matching is the greedy algorithm that remembers only the last '*': a later
// star can absorb whatever an earlier one would have, so earlier stars never
// need revisiting. Worst case O(len(pattern)*len(s)), no allocation.
func Match(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0 // pattern index after the last '*'; s index it resumes from
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				p++
				if p == len(pattern) {
					return true
				}
				star, mark = p, i
				continue
			case '?':
				_, n := utf8.DecodeRuneInString(s[i:])
				p, i = p+1, i+n
				continue
			default:
				if s[i] == c {
					p, i = p+1, i+1
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		_, n := utf8.DecodeRuneInString(s[mark:])
		mark += n
		p, i = star, mark
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
