package onecontext

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// IfaceRef is one `ethX/addr@port` part of an interface list. Addr and Port
// are zero when the part does not give them.
type IfaceRef struct {
	NIC  string
	Addr netip.Addr
	Port uint16
}

// Selection is the result of an interface list: the chosen NICs in index
// order, and for each the parts that named it.
type Selection struct {
	NICs []string
	Refs map[string][]IfaceRef
}

// Has reports whether nic is selected.
func (s Selection) Has(nic string) bool {
	for _, n := range s.NICs {
		if n == nic {
			return true
		}
	}
	return false
}

// WithoutManagement drops the management NICs and returns the ones it dropped.
func (s Selection) WithoutManagement(t Topology) (Selection, []string) {
	out := Selection{Refs: map[string][]IfaceRef{}}
	var dropped []string
	for _, n := range s.NICs {
		if t.IsManagement(n) {
			dropped = append(dropped, n)
			continue
		}
		out.NICs = append(out.NICs, n)
		out.Refs[n] = s.Refs[n]
	}
	return out, dropped
}

// EmptyMeans says what an empty (or unset) interface list selects.
type EmptyMeans int

const (
	// EmptyAll: an empty list selects every NIC (most *_INTERFACES variables).
	EmptyAll EmptyMeans = iota
	// EmptyNone: an empty list selects nothing (NAT4 INTERFACES_OUT, SDNAT4 INTERFACES).
	EmptyNone
)

// Interfaces parses the interface list held by variable name.
//
// The grammar: items separated by blanks, commas or semicolons; `!item`
// excludes; an item is `ethX`, `ethX/addr`, `ethX@port`, `ethX/addr@port`, or
// a bare `addr[@port]`, which selects the NIC holding that address (its own
// IP first, then its VIPs). With only exclusions the list starts from every
// NIC. Naming a NIC the context does not have, or an address no NIC holds, is
// an error. NICs come out sorted by index, each once.
func (t Topology) Interfaces(name, value string, empty EmptyMeans) (Selection, error) {
	sel := Selection{Refs: map[string][]IfaceRef{}}
	var include, exclude []IfaceRef
	for _, tok := range splitList(value) {
		neg := strings.HasPrefix(tok, "!")
		if neg {
			tok = tok[1:]
			if tok == "" {
				continue
			}
		}
		refs, err := t.resolveItem(tok)
		if err != nil {
			return Selection{}, Errorf(name, value, "%v", err)
		}
		if neg {
			exclude = append(exclude, refs...)
		} else {
			include = append(include, refs...)
		}
	}
	if len(include) == 0 {
		if len(exclude) == 0 && empty == EmptyNone {
			return sel, nil
		}
		for _, n := range t.NICs {
			include = append(include, IfaceRef{NIC: n.Name})
		}
	}
	excluded := map[string]bool{}
	for _, r := range exclude {
		excluded[r.NIC] = true
	}
	for _, r := range include {
		if excluded[r.NIC] {
			continue
		}
		if _, seen := sel.Refs[r.NIC]; !seen {
			sel.NICs = append(sel.NICs, r.NIC)
		}
		if !containsRef(sel.Refs[r.NIC], r) {
			sel.Refs[r.NIC] = append(sel.Refs[r.NIC], r)
		}
	}
	order := map[string]int{}
	for i, n := range t.NICs {
		order[n.Name] = i
	}
	sort.SliceStable(sel.NICs, func(i, j int) bool { return order[sel.NICs[i]] < order[sel.NICs[j]] })
	return sel, nil
}

func containsRef(refs []IfaceRef, r IfaceRef) bool {
	for _, x := range refs {
		if x == r {
			return true
		}
	}
	return false
}

// resolveItem parses one list item into the parts it names.
func (t Topology) resolveItem(tok string) ([]IfaceRef, error) {
	var ref IfaceRef
	rest := tok
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		if p := rest[at+1:]; p != "" {
			port, err := ParsePort(p)
			if err != nil {
				return nil, fmt.Errorf("item %q: %v", tok, err)
			}
			ref.Port = port
		}
		rest = rest[:at]
	}
	nicPart, addrPart, hasSlash := strings.Cut(rest, "/")
	if low := strings.ToLower(nicPart); nicNameRe.MatchString(low) {
		ref.NIC = low
		if _, ok := t.NIC(ref.NIC); !ok {
			return nil, fmt.Errorf("item %q: the context has no NIC %s (known: %s)", tok, ref.NIC, strings.Join(t.Names(), " "))
		}
		if hasSlash && addrPart != "" {
			a, err := netip.ParseAddr(addrPart)
			if err != nil {
				return nil, fmt.Errorf("item %q: %q is not an IP address", tok, addrPart)
			}
			ref.Addr = a
		}
		return []IfaceRef{ref}, nil
	}
	if hasSlash {
		return nil, fmt.Errorf("item %q is not ethX[/addr][@port] or addr[@port]", tok)
	}
	a, err := netip.ParseAddr(nicPart)
	if err != nil {
		return nil, fmt.Errorf("item %q is neither a NIC name (ethX) nor an IP address", tok)
	}
	ref.Addr = a
	var out []IfaceRef
	for _, n := range t.NICs { // the NIC's own IP first ...
		if n.IP.IsValid() && n.IP.Addr() == a {
			r := ref
			r.NIC = n.Name
			out = append(out, r)
		}
	}
	if len(out) == 0 { // ... then its VIPs
		for _, n := range t.NICs {
			for _, v := range n.VIPs {
				if v.Prefix.Addr() == a {
					r := ref
					r.NIC = n.Name
					out = append(out, r)
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("item %q: no NIC of the context holds %s", tok, a)
	}
	return out, nil
}

// Interfaces parses the interface-list variable name of e.
func (e Env) Interfaces(name string, empty EmptyMeans) (Selection, Topology, error) {
	t, err := e.Topology()
	if err != nil {
		return Selection{}, t, err
	}
	sel, err := t.Interfaces(name, e.Get(name), empty)
	return sel, t, err
}
