package onegate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// OneGate's JSON is OpenNebula's XML turned into hashes: every value may be a
// string (numbers included), an element that can repeat is a single object
// when it occurs once and an array when it occurs more often (the server
// normalises only some of them), and an empty element is {} or "". The helpers
// below read such a tree without ever panicking: a value of the wrong shape
// reads as absent.

// parseTree decodes a document into a generic tree (numbers kept as text).
func parseTree(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON document")
	}
	return v, nil
}

// root returns the object under key at the top of a document ({"VNET": {...}}).
func root(tree any, key string) (map[string]any, error) {
	top, ok := tree.(map[string]any)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	m, ok := top[key].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("no %s object", key)
	}
	return m, nil
}

// obj returns v as an object; anything else is an empty one.
func obj(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	return nil
}

// list returns v as a list: an array as is, a single object or value as a
// one-element list, absent or empty ({} or "") as none.
func list(v any) []any {
	switch t := v.(type) {
	case nil:
		return nil
	case []any:
		return t
	case map[string]any:
		if len(t) == 0 {
			return nil
		}
	case string:
		if strings.TrimSpace(t) == "" {
			return nil
		}
	}
	return []any{v}
}

// str returns a scalar as text: strings as they are, numbers in their JSON
// spelling, booleans as YES/NO (OpenNebula's spelling). Objects, arrays and
// null are "".
func str(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		if t {
			return "YES"
		}
		return "NO"
	}
	return ""
}

// id reads an object ID: a whole number 0 or more, as text or number; -1
// (None) when absent, empty or malformed.
func id(v any) int {
	s := strings.TrimSpace(str(v))
	if s == "" {
		return None
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return None
	}
	return n
}

// num reads a whole number, def when absent or malformed.
func num(v any, def int) int {
	n, err := strconv.Atoi(strings.TrimSpace(str(v)))
	if err != nil {
		return def
	}
	return n
}

// yes reads OpenNebula's booleans: JSON true, or YES / TRUE / 1 in any case.
func yes(v any) bool {
	if b, ok := v.(bool); ok {
		return b
	}
	switch strings.ToUpper(strings.TrimSpace(str(v))) {
	case "YES", "TRUE", "1":
		return true
	}
	return false
}

// addr reads an IP address; the zero Addr when absent or malformed.
func addr(v any) netip.Addr {
	a, err := netip.ParseAddr(strings.TrimSpace(str(v)))
	if err != nil {
		return netip.Addr{}
	}
	return a
}

// ids reads a list of IDs, skipping malformed ones.
func ids(v any) []int {
	var out []int
	for _, e := range list(v) {
		if n := id(e); n != None {
			out = append(out, n)
		}
	}
	return out
}

// scalars returns the scalar attributes of an object as text. Nested values
// (vector attributes such as a user template's VECTOR=[A=1]) are kept as
// their compact JSON text so nothing is silently lost.
func scalars(m map[string]any) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch v.(type) {
		case map[string]any, []any:
			b, err := json.Marshal(v)
			if err == nil {
				out[k] = string(b)
			}
		case nil:
			out[k] = ""
		default:
			out[k] = str(v)
		}
	}
	return out
}

// prefixed returns the scalar attributes whose names start with prefix.
func prefixed(m map[string]any, prefix string) map[string]string {
	var out map[string]string
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = str(v)
		}
	}
	return out
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
