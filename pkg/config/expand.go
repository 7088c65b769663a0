package config

import (
	"errors"
	"fmt"
	"strings"
)

// Environment references in the policy file. A string value may name
// environment variables as ${NAME}; they are replaced after the YAML has
// been parsed, in the string scalar alone, so that a variable's value is
// always one plain string: a newline, a colon or a "- " in it cannot add
// keys or list items to the document. Numbers and booleans are written as
// they are; durations are strings and are expanded.
//
//	${NAME}          the variable's value; unset or empty is an error
//	${NAME:-text}    the value, or text when the variable is unset or empty
//	                 (text may be empty: ${NAME:-} allows an empty result)
//	$${              a literal "${"
//
// Any other "$" is kept as it is, so CEL expressions and regular
// expressions with "$" need no escaping. A value that expands to the empty
// string is taken as omitted: the key's default applies.

// LookupFunc reads one environment variable, as os.LookupEnv does.
type LookupFunc func(name string) (string, bool)

// expand replaces the environment references in s. Its errors name the
// variable; the caller adds the key path.
func expand(s string, env LookupFunc) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			// "$${": an escaped literal "${"; the first "$" is dropped.
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		s = s[i+2:]
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return "", errors.New(`"${" without a closing "}" (write "$${" for a literal "${")`)
		}
		ref := s[:end]
		s = s[end+1:]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !isEnvName(name) {
			return "", fmt.Errorf("${%s} does not name an environment variable (letters, digits and \"_\", not starting with a digit; write \"$${\" for a literal \"${\")", ref)
		}
		if hasDef && strings.Contains(def, "${") {
			return "", fmt.Errorf("${%s}: a default cannot hold another reference", ref)
		}
		v, ok := env(name)
		switch {
		case v != "":
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		case !ok:
			return "", fmt.Errorf("environment variable %s is not set (write ${%s:-} to allow it unset)", name, name)
		default:
			return "", fmt.Errorf("environment variable %s is empty (write ${%s:-} to allow it empty)", name, name)
		}
	}
}

// isEnvName reports whether s is a portable environment variable name
// (POSIX.1-2017 §8.1): ASCII letters, digits and "_", not starting with a digit.
func isEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
