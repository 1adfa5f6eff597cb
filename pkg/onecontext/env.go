package onecontext

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Env is a snapshot of the context: variable names to values. Empty and unset
// are the same: every accessor treats a variable whose value is "" as absent.
type Env struct {
	vars map[string]string
}

// New returns an Env holding a copy of vars.
func New(vars map[string]string) Env {
	m := make(map[string]string, len(vars))
	for k, v := range vars {
		m[k] = v
	}
	return Env{vars: m}
}

// FromPairs builds an Env from NAME=value pairs (tests, examples).
func FromPairs(pairs ...string) Env {
	m := map[string]string{}
	for _, p := range pairs {
		k, v, _ := strings.Cut(p, "=")
		m[k] = v
	}
	return Env{vars: m}
}

// Load reads the one_env file at path (a missing file is an empty context)
// and merges environ over it: a variable present in the process environment
// wins over the file, even when it is empty.
func Load(path string, environ []string) (Env, []string, error) {
	var warnings []string
	vars := map[string]string{}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		var skipped []string
		vars, skipped = ParseEnvFile(data)
		for _, s := range skipped {
			warnings = append(warnings, fmt.Sprintf("%s: %s has no closing quote; ignored", path, s))
		}
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, fs.ErrPermission):
		warnings = append(warnings, fmt.Sprintf("%s is not readable (%v); using the process environment only", path, err))
	default:
		return Env{}, nil, fmt.Errorf("reading context %s: %w", path, err)
	}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k != "" {
			vars[k] = v
		}
	}
	return Env{vars: vars}, warnings, nil
}

// With returns a copy of e with the given NAME=value pairs set.
func (e Env) With(pairs ...string) Env {
	n := New(e.vars)
	for _, p := range pairs {
		k, v, _ := strings.Cut(p, "=")
		n.vars[k] = v
	}
	return n
}

// Get returns the value of name, "" when unset or empty.
func (e Env) Get(name string) string { return e.vars[name] }

// Has reports whether name is set to a non-empty value.
func (e Env) Has(name string) bool { return e.vars[name] != "" }

// String returns the value of name, or def when it is empty or unset.
func (e Env) String(name, def string) string {
	if v := e.vars[name]; v != "" {
		return v
	}
	return def
}

// Names returns every variable name with a non-empty value, sorted.
func (e Env) Names() []string {
	out := make([]string, 0, len(e.vars))
	for k, v := range e.vars {
		if v != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// AllNames returns every variable name, empty ones included, sorted.
func (e Env) AllNames() []string {
	out := make([]string, 0, len(e.vars))
	for k := range e.vars {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ParseBool is the boolean grammar of the appliance: YES/NO, 1/0 and
// true/false in any case, surrounding blanks ignored.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "1", "true":
		return true, nil
	case "no", "0", "false":
		return false, nil
	}
	return false, errors.New("not a boolean: use YES or NO")
}

// Bool returns the boolean value of name, def when empty or unset.
func (e Env) Bool(name string, def bool) (bool, error) {
	v := e.vars[name]
	if v == "" {
		return def, nil
	}
	b, err := ParseBool(v)
	if err != nil {
		return false, Errorf(name, v, "%v", err)
	}
	return b, nil
}

// LenientBool is Bool falling back to def on an invalid value, for the places
// that must not fail on a bad context (teardown).
func (e Env) LenientBool(name string, def bool) bool {
	b, err := e.Bool(name, def)
	if err != nil {
		return def
	}
	return b
}

// Int returns the decimal integer value of name within [min, max], def when
// empty or unset.
func (e Env) Int(name string, def, min, max int) (int, error) {
	v := e.vars[name]
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, Errorf(name, v, "not a whole number")
	}
	if n < min || n > max {
		return 0, Errorf(name, v, "out of range %d-%d", min, max)
	}
	return n, nil
}

// Seconds returns a positive duration given in (possibly fractional) seconds.
func (e Env) Seconds(name string, def time.Duration, min, max time.Duration) (time.Duration, error) {
	v := e.vars[name]
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f != f {
		return 0, Errorf(name, v, "not a number of seconds")
	}
	d := time.Duration(f * float64(time.Second))
	if d < min || d > max {
		return 0, Errorf(name, v, "out of range %v-%v", min, max)
	}
	return d, nil
}

// Port returns a TCP/UDP port (1-65535), def when empty or unset.
func (e Env) Port(name string, def uint16) (uint16, error) {
	v := e.vars[name]
	if v == "" {
		return def, nil
	}
	p, err := ParsePort(v)
	if err != nil {
		return 0, Errorf(name, v, "%v", err)
	}
	return p, nil
}

// ParsePort parses a decimal port number 1-65535.
func ParsePort(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("port %q is not a number 1-65535", s)
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number 1-65535", s)
	}
	return uint16(n), nil
}

// IndexedVar is one variable of an indexed family such as PORT_FWD12.
type IndexedVar struct {
	Index int
	Name  string
	Value string
}

// Indexed returns the non-empty variables named prefix<N> (N any decimal
// number, no upper bound) sorted by N.
func (e Env) Indexed(prefix string) []IndexedVar {
	return e.IndexedSuffix(prefix, "")
}

// IndexedSuffix returns the non-empty variables named prefix<N>suffix sorted by N.
func (e Env) IndexedSuffix(prefix, suffix string) []IndexedVar {
	var out []IndexedVar
	for k, v := range e.vars {
		if v == "" || !strings.HasPrefix(k, prefix) || !strings.HasSuffix(k, suffix) || len(k) < len(prefix)+len(suffix)+1 {
			continue
		}
		digits := k[len(prefix) : len(k)-len(suffix)]
		n, ok := index(digits)
		if !ok {
			continue
		}
		out = append(out, IndexedVar{Index: n, Name: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Index != out[j].Index {
			return out[i].Index < out[j].Index
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// index parses an unbounded decimal index; very long digit strings are not indexes.
func index(digits string) (int, bool) {
	if digits == "" || len(digits) > 9 || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil
}

// Match returns the non-empty variables whose names match re, sorted by name.
func (e Env) Match(re *regexp.Regexp) []IndexedVar {
	var out []IndexedVar
	for _, k := range e.Names() {
		if re.MatchString(k) {
			out = append(out, IndexedVar{Name: k, Value: e.vars[k]})
		}
	}
	return out
}
