package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// checkTags enforces the single-key constraints that the struct tags state
// (see generate.go), the same ones api/config.schema.json is written from:
// required (a string that is not empty), min and max (numbers), enum and
// minLength (strings), and, with the "items." prefix, enum and minLength
// of a list's strings and unique lists. It follows nested structs and
// lists of structs (resources[], rules[], ...). Problems are reported in
// struct order, named by key path.
//
// Not enforced here, because Validate's own checks of those keys are
// stricter than the schema can say and give more useful messages:
// pattern and itemPattern, ref (the generator's named string shapes),
// format and minItems.
//
// The cache.redis keys are skipped when no Redis is configured: they
// apply to nothing then, and Validate refuses any of them that is set.
func checkTags(c *Config) Errors {
	var errs Errors
	skip := ""
	if c.Cache.RedisMode() == RedisModeNone {
		skip = "cache.redis"
	}
	tagStruct(&errs, reflect.ValueOf(c).Elem(), "", skip)
	return errs
}

func tagStruct(errs *Errors, v reflect.Value, path, skip string) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		key := YAMLKey(sf)
		if !sf.IsExported() || key == "" || key == "-" {
			continue
		}
		p := key
		if path != "" {
			p = path + "." + key
		}
		if p == skip {
			continue
		}
		tagValue(errs, v.Field(i), p, ParseSchemaTag(sf), skip)
	}
}

func tagValue(errs *Errors, v reflect.Value, path string, tg SchemaTag, skip string) {
	add := func(p, format string, args ...any) {
		*errs = append(*errs, &Error{Path: p, Msg: fmt.Sprintf(format, args...)})
	}
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() != reflect.TypeFor[Duration]() {
			tagStruct(errs, v, path, skip)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			for i := range v.Len() {
				tagStruct(errs, v.Index(i), fmt.Sprintf("%s[%d]", path, i), skip)
			}
			return
		}
		if v.Type().Elem().Kind() != reflect.String {
			return
		}
		_, unique := tg["unique"]
		first := map[string]int{}
		for i := range v.Len() {
			s := v.Index(i).String()
			ip := fmt.Sprintf("%s[%d]", path, i)
			if msg := stringProblem(s, tg, "items."); msg != "" {
				add(ip, "%s", msg)
				continue
			}
			if j, dup := first[s]; dup && unique {
				add(ip, "%q is already listed at %s[%d]", s, path, j)
			} else if !dup {
				first[s] = i
			}
		}
	case reflect.String:
		s := v.String()
		if _, req := tg["required"]; req && s == "" {
			add(path, msgRequired)
			return
		}
		if msg := stringProblem(s, tg, ""); msg != "" {
			add(path, "%s", msg)
		}
	case reflect.Int, reflect.Int64, reflect.Uint32:
		var f float64
		if v.CanInt() {
			f = float64(v.Int())
		} else {
			f = float64(v.Uint())
		}
		if msg := numberProblem(f, tg, path); msg != "" {
			add(path, "%s", msg)
		}
	case reflect.Float64:
		if msg := numberProblem(v.Float(), tg, path); msg != "" {
			add(path, "%s", msg)
		}
	}
}

// stringProblem is what is wrong with s under the entries of tg that start
// with prefix ("" for the key, "items." for a list's items), or "".
func stringProblem(s string, tg SchemaTag, prefix string) string {
	if e, ok := tg[prefix+"enum"]; ok {
		values := strings.Split(e, "|")
		for _, v := range values {
			if s == v {
				return ""
			}
		}
		if prefix != "" {
			return fmt.Sprintf("%q is not supported (use one of %s)", s, strings.Join(values, ", "))
		}
		quoted := make([]string, len(values))
		for i, v := range values {
			quoted[i] = strconv.Quote(v)
		}
		if len(quoted) == 1 {
			return "must be " + quoted[0]
		}
		return "must be " + strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
	}
	if m, ok := tg[prefix+"minLength"]; ok {
		n, err := strconv.Atoi(m)
		if err != nil {
			panic(fmt.Sprintf("config: bad minLength tag %q", m))
		}
		if utf8.RuneCountInString(s) < n {
			if n == 1 {
				return msgNotEmpty
			}
			return fmt.Sprintf("must be at least %d characters long", n)
		}
	}
	return ""
}

// numberProblem is what is wrong with f under tg's min and max, or "".
// NaN is outside every range.
func numberProblem(f float64, tg SchemaTag, path string) string {
	bound := func(k string) (float64, string, bool) {
		s, ok := tg[k]
		if !ok {
			return 0, "", false
		}
		b, err := strconv.ParseFloat(s, 64)
		if err != nil {
			panic(fmt.Sprintf("config: %s: bad %s tag %q", path, k, s))
		}
		return b, s, true
	}
	lo, los, hasLo := bound("min")
	hi, his, hasHi := bound("max")
	inRange := (!hasLo || f >= lo) && (!hasHi || f <= hi) && !math.IsNaN(f)
	switch {
	case inRange:
		return ""
	case hasLo && hasHi:
		return fmt.Sprintf("must be between %s and %s%s", los, his, byteUnit(path, hi))
	case hasLo && lo == 0:
		return msgNonNegative
	case hasLo && lo == 1:
		return msgPositive
	case hasLo:
		return "must be at least " + los
	default:
		return "must not exceed " + his + byteUnit(path, hi)
	}
}

// byteUnit is " (1 MiB)" for a *_bytes key bounded by a whole number of
// KiB, MiB, GiB or TiB, so that a limit such as 1048576 reads at a glance.
func byteUnit(path string, n float64) string {
	if !strings.HasSuffix(path, "_bytes") {
		return ""
	}
	units := []string{"TiB", "GiB", "MiB", "KiB"}
	for i, u := range units {
		size := math.Pow(1024, float64(len(units)-i))
		if n >= size && math.Mod(n, size) == 0 {
			return fmt.Sprintf(" (%d %s)", int64(n/size), u)
		}
	}
	return ""
}

// mergeTagErrors adds the tag problems to the other problems Validate
// found, keeping each list's order and placing each tag problem before
// the first other problem of a later key in struct order. A key that
// Validate's own checks already reported on keeps only those messages:
// they say more about that key than the generic one.
func mergeTagErrors(tagErrs, own Errors) Errors {
	reported := map[string]bool{}
	for _, e := range own {
		reported[e.Path] = true
	}
	out := make(Errors, 0, len(tagErrs)+len(own))
	i := 0
	for _, e := range tagErrs {
		if reported[e.Path] {
			continue
		}
		k := structOrder(e.Path)
		for i < len(own) && compareOrder(structOrder(own[i].Path), k) <= 0 {
			out = append(out, own[i])
			i++
		}
		out = append(out, e)
	}
	return append(out, own[i:]...)
}

// structOrder is where key path p sits in Config: the index of each field
// and list element along it. A segment it cannot follow (a map key, a
// path that names no field) ends it.
func structOrder(p string) []int {
	var out []int
	t := reflect.TypeFor[Config]()
	for seg := range strings.SplitSeq(p, ".") {
		name, rest, _ := strings.Cut(seg, "[")
		idx := -1
		for i := range t.NumField() {
			if YAMLKey(t.Field(i)) == name {
				idx = i
				break
			}
		}
		if idx < 0 {
			return out
		}
		out = append(out, idx)
		t = t.Field(idx).Type
		for rest != "" {
			num, after, _ := strings.Cut(rest, "]")
			n, err := strconv.Atoi(num)
			if err != nil || t.Kind() != reflect.Slice {
				return out
			}
			out = append(out, n)
			t = t.Elem()
			rest = strings.TrimPrefix(after, "[")
		}
		if t.Kind() != reflect.Struct {
			return out
		}
	}
	return out
}

// compareOrder compares two structOrder results; a path is before the
// paths under it.
func compareOrder(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] - b[i]
		}
	}
	return len(a) - len(b)
}
