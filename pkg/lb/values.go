package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/hypercx/vrouter/pkg/onecontext"
)

// ParseHost validates a server host: an IPv4 address or an RFC 1123 host
// name (letters, digits, hyphens and dots; labels of 1-63 characters not
// starting or ending with a hyphen; 253 characters at most). Surrounding
// blanks are ignored; nothing else is accepted, so the result can be written
// into any daemon configuration as one word.
func ParseHost(s string) (host string, addr netip.Addr, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", netip.Addr{}, errors.New("empty host")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if !a.Is4() {
			return "", netip.Addr{}, fmt.Errorf("%q is not an IPv4 address (IPv6 backends are not supported)", s)
		}
		if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return "", netip.Addr{}, fmt.Errorf("%s cannot be a server address", a)
		}
		return a.String(), a, nil
	}
	if len(s) > 253 {
		return "", netip.Addr{}, errors.New("a host name is at most 253 characters")
	}
	labels := strings.Split(s, ".")
	allDigits := true
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return "", netip.Addr{}, fmt.Errorf("%q is neither an IPv4 address nor a host name", s)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", netip.Addr{}, fmt.Errorf("%q is neither an IPv4 address nor a host name", s)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				allDigits = false
			default:
				return "", netip.Addr{}, fmt.Errorf("%q is neither an IPv4 address nor a host name", s)
			}
		}
	}
	if allDigits {
		// 10.0.0.256, 10.0.0: not an address, and a name cannot be all digits.
		return "", netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return strings.ToLower(s), netip.Addr{}, nil
}

// parseCount parses a decimal whole number within [0, max].
func parseCount(s string, max int) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 10 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a whole number 0-%d", s, max)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > max {
		return 0, fmt.Errorf("%q is not a whole number 0-%d", s, max)
	}
	return n, nil
}

// MaxLimit bounds the connection limits (IPVS thresholds are 32-bit).
const MaxLimit = 1 << 30

// serverFields are a server's raw values by field (HOST, PORT, WEIGHT,
// ULIMIT, LLIMIT) with the name each came from.
type serverFields map[string]Option

// server validates raw server fields. needPort: a missing port is an error.
func (f Family) server(fields serverFields, needPort bool) (Server, error) {
	var s Server
	h, ok := fields["HOST"]
	if !ok {
		return s, fieldError{field: "HOST", msg: "no host"}
	}
	host, addr, err := ParseHost(h.Value)
	if err != nil {
		return s, fieldError{field: "HOST", msg: err.Error()}
	}
	s.Host, s.Addr = host, addr
	if p, ok := fields["PORT"]; ok {
		port, err := onecontext.ParsePort(p.Value)
		if err != nil {
			return s, fieldError{field: "PORT", msg: err.Error()}
		}
		s.Port = port
	} else if needPort {
		return s, fieldError{field: "PORT", msg: "no port"}
	}
	s.Weight = DefaultWeight
	if w, ok := fields["WEIGHT"]; ok {
		if s.Weight, err = parseCount(w.Value, f.MaxWeight); err != nil {
			return s, fieldError{field: "WEIGHT", msg: "weight " + err.Error()}
		}
	}
	if u, ok := fields["ULIMIT"]; ok {
		if s.ULimit, err = parseCount(u.Value, MaxLimit); err != nil {
			return s, fieldError{field: "ULIMIT", msg: "upper connection limit " + err.Error()}
		}
	}
	if l, ok := fields["LLIMIT"]; ok {
		if s.LLimit, err = parseCount(l.Value, MaxLimit); err != nil {
			return s, fieldError{field: "LLIMIT", msg: "lower connection limit " + err.Error()}
		}
	}
	if s.LLimit > 0 && s.ULimit > 0 && s.LLimit >= s.ULimit {
		return s, fieldError{field: "LLIMIT", msg: fmt.Sprintf("the lower connection limit %d must be below the upper one %d", s.LLimit, s.ULimit)}
	}
	return s, nil
}

// fieldError is a problem with one field of a server or LB.
type fieldError struct {
	field, msg string
}

func (e fieldError) Error() string { return e.msg }

// cutIndex splits "12_REST" into 12 and "REST" (an unbounded decimal index,
// as everywhere in the context; very long digit strings are not indexes).
func cutIndex(s string) (int, string, bool) {
	d := 0
	for d < len(s) && s[d] >= '0' && s[d] <= '9' {
		d++
	}
	if d == 0 || d > 9 || d >= len(s) || s[d] != '_' {
		return 0, "", false
	}
	n, err := strconv.Atoi(s[:d])
	if err != nil {
		return 0, "", false
	}
	return n, s[d+1:], true
}

// serverField splits "SERVER3_HOST" into 3 and "HOST" (static form).
func serverField(rest string) (int, string, bool) {
	r, ok := strings.CutPrefix(rest, "SERVER")
	if !ok {
		return 0, "", false
	}
	j, field, ok := cutIndex(r)
	if !ok || !isServerField(field) {
		return 0, "", false
	}
	return j, field, true
}

func isServerField(f string) bool {
	switch f {
	case "HOST", "PORT", "WEIGHT", "ULIMIT", "LLIMIT":
		return true
	}
	return false
}
