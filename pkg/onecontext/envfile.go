// Package onecontext reads the OpenNebula/HyperCX context of the Virtual Router
// (/run/one-context/one_env merged with the process environment) and turns the
// ETHx_* and ONEAPP_* variables into typed values: booleans, ports, NICs with
// their addresses, VIPs and endpoints, placeholders and interface lists.
//
// Every service binary uses this package, so the grammar of a variable is
// defined once. Empty and unset are the same thing everywhere.
package onecontext

import (
	"bytes"
	"regexp"
	"strings"
)

// DefaultEnvFile is where one-context writes the context for the appliance.
const DefaultEnvFile = "/run/one-context/one_env"

// startLine matches the first line of a record: `export NAME=...` or `NAME=...`.
var startLine = regexp.MustCompile(`^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)

// ParseEnvFile decodes the one_env format written by one-context's
// loc-16-gen-env: one `export NAME="value"` record per variable.
//
// A record starts at every line that looks like an assignment and takes the
// following lines until the next one, so values may span lines. The value of
// a double-quoted record runs from its first to its last double quote (the
// writer does not escape quotes inside values, so the last one is the closing
// one), and the escapes a POSIX shell honours inside double quotes (\" \\ \$
// \` and backslash-newline) are decoded; nothing is ever expanded or executed.
// Single-quoted records are taken literally and unquoted ones run to the end
// of the line. A record without its closing quote is reported in skipped and
// left out.
func ParseEnvFile(data []byte) (vars map[string]string, skipped []string) {
	vars = map[string]string{}
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	var name string
	var rec []string
	flush := func() {
		if name == "" {
			return
		}
		v, ok := decodeRecord(strings.Join(rec, "\n"))
		if ok {
			vars[name] = v
		} else {
			skipped = append(skipped, name)
		}
		name, rec = "", nil
	}
	for _, l := range lines {
		if n, v, ok := assignment(l); ok {
			flush()
			name, rec = n, []string{v}
			continue
		}
		if name != "" {
			// A comment or blank line after a record whose value is
			// already closed ends it: a quote in a comment must not
			// become part of the value before it.
			if t := strings.TrimSpace(l); (t == "" || t[0] == '#') && closed(rec) {
				flush()
				continue
			}
			rec = append(rec, l)
		}
	}
	flush()
	return vars, skipped
}

// assignment splits a line of the form `[export ]NAME=rest` (what startLine
// matches, without the regexp cost: one_env files may hold many thousands of
// variables).
func assignment(l string) (name, rest string, ok bool) {
	l = strings.TrimLeft(l, " \t")
	if strings.HasPrefix(l, "export") && len(l) > 6 && (l[6] == ' ' || l[6] == '\t') {
		l = strings.TrimLeft(l[6:], " \t")
	}
	eq := strings.IndexByte(l, '=')
	if eq <= 0 {
		return "", "", false
	}
	for i := 0; i < eq; i++ {
		c := l[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return "", "", false
		}
	}
	return l[:eq], l[eq+1:], true
}

// closed reports whether the record so far holds a whole value: unquoted,
// or ending with the quote that closes its opening one.
func closed(rec []string) bool {
	s := strings.TrimRight(strings.Join(rec, "\n"), " \t")
	if s == "" {
		return true
	}
	switch s[0] {
	case '"':
		return len(s) >= 2 && lastUnescapedQuote(s) == len(s)-1
	case '\'':
		return len(s) >= 2 && s[len(s)-1] == '\''
	}
	return true
}

// decodeRecord decodes the text after `NAME=`.
func decodeRecord(s string) (string, bool) {
	if s == "" {
		return "", true
	}
	switch s[0] {
	case '"':
		end := lastUnescapedQuote(s)
		if end <= 0 {
			return "", false
		}
		return unescapeDouble(s[1:end]), true
	case '\'':
		end := strings.LastIndexByte(s, '\'')
		if end <= 0 {
			return "", false
		}
		return s[1:end], true
	default:
		// Unquoted: the rest of the first line, without a trailing comment.
		first, _, _ := strings.Cut(s, "\n")
		if i := strings.Index(first, " #"); i >= 0 {
			first = first[:i]
		}
		return strings.TrimSpace(first), true
	}
}

// lastUnescapedQuote returns the index of the last '"' in s that is not
// preceded by an odd number of backslashes, or -1.
func lastUnescapedQuote(s string) int {
	for i := len(s) - 1; i > 0; i-- {
		if s[i] != '"' {
			continue
		}
		n := 0
		for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return i
		}
	}
	return -1
}

// unescapeDouble applies the POSIX double-quote escapes.
func unescapeDouble(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case '"', '\\', '$', '`':
				b.WriteByte(s[i+1])
				i++
				continue
			case '\n':
				i++
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}
