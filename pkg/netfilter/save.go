package netfilter

import (
	"bufio"
	"bytes"
	"strings"
)

// State is one table as iptables-save printed it.
type State struct {
	Chains map[string][]string // chain -> rule specifications, in order
	Order  []string            // chains in the order they were declared
}

// Has reports whether chain exists.
func (s State) Has(chain string) bool {
	_, ok := s.Chains[chain]
	return ok
}

// ParseSave parses the output of `iptables-save -t <table>`.
func ParseSave(data []byte) State {
	st := State{Chains: map[string][]string{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, ":"):
			name, _, _ := strings.Cut(l[1:], " ")
			if _, ok := st.Chains[name]; !ok {
				st.Chains[name] = nil
				st.Order = append(st.Order, name)
			}
		case strings.HasPrefix(l, "-A "):
			rest := l[3:]
			name, rule, _ := strings.Cut(rest, " ")
			if _, ok := st.Chains[name]; !ok {
				st.Order = append(st.Order, name)
			}
			st.Chains[name] = append(st.Chains[name], rule)
		}
	}
	return st
}

// Referrers returns, for every rule outside the chains in skip that jumps to
// target, its chain and specification.
func (s State) Referrers(target string, skip map[string]bool) [][2]string {
	var out [][2]string
	for _, c := range s.Order {
		if skip[c] {
			continue
		}
		for _, r := range s.Chains[c] {
			if Target(r) == target {
				out = append(out, [2]string{c, r})
			}
		}
	}
	return out
}
