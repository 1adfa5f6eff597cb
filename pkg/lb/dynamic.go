package lb

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/hypercx/vrouter/pkg/onecontext"
)

// Object is one source of dynamic servers: a backend VM and its ONEGATE_*
// attributes (copied into its lease in virtual-router mode, or its user
// template in OneFlow mode).
type Object struct {
	VM    int
	Attrs map[string]string
}

// Candidate is a dynamic server and the LB it asks to join.
type Candidate struct {
	VM    int
	Index int
	Addr  netip.Addr
	// Port is 0 when the object gives no LB port (it can then only join an
	// all-ports LB).
	Port   uint16
	Server Server
}

func (c Candidate) endpoint() string {
	if c.Port == 0 {
		return c.Addr.String() + ":*"
	}
	return netip.AddrPortFrom(c.Addr, c.Port).String()
}

// ParseDynamic parses the objects' attributes into candidates. id is this
// router's VROUTER_ID (virtual-router mode) or SERVICE_ID (OneFlow mode): an
// LB index whose <prefix>x_ID is set to anything else belongs to another
// router and is ignored. Placeholders in <prefix>x_IP are resolved with this
// router's addresses. Invalid entries are skipped, each with a reason naming
// the VM and the attribute (never its value, which may be anything).
func (f Family) ParseDynamic(objs []Object, id string, top onecontext.Topology) ([]Candidate, []Skip) {
	var out []Candidate
	var skips []Skip
	for _, o := range objs {
		type entry struct {
			opts   map[string]string
			server serverFields
		}
		entries := map[int]*entry{}
		for name, v := range o.Attrs {
			rest, ok := strings.CutPrefix(name, f.DynamicPrefix)
			if !ok {
				continue
			}
			i, suffix, ok := cutIndex(rest)
			if !ok {
				continue
			}
			e := entries[i]
			if e == nil {
				e = &entry{opts: map[string]string{}, server: serverFields{}}
				entries[i] = e
			}
			if field, ok := strings.CutPrefix(suffix, "SERVER_"); ok && isServerField(field) {
				if strings.TrimSpace(v) != "" {
					e.server[field] = Option{Var: name, Value: v}
				}
				continue
			}
			switch suffix {
			case "ID", "IP", "PORT":
				if strings.TrimSpace(v) != "" {
					e.opts[suffix] = v
				}
			}
		}
		idx := make([]int, 0, len(entries))
		for i := range entries {
			idx = append(idx, i)
		}
		sort.Ints(idx)
		for _, i := range idx {
			e := entries[i]
			attr := func(s string) string { return fmt.Sprintf("%s%d_%s", f.DynamicPrefix, i, s) }
			skip := func(format string, args ...any) {
				skips = append(skips, Skip{VM: o.VM, Reason: fmt.Sprintf(format, args...)})
			}
			if owner := strings.TrimSpace(e.opts["ID"]); owner != "" && owner != id {
				continue // another router's (or service's) backend
			}
			if len(e.server) == 0 {
				continue // declared, not configured yet (the guide's first step)
			}
			ip, ok := e.opts["IP"]
			if !ok {
				skip("%s is not set", attr("IP"))
				continue
			}
			a, err := top.ResolveAddr(ip)
			if err != nil {
				skip("%s: not an IPv4 address or a placeholder of this router", attr("IP"))
				continue
			}
			c := Candidate{VM: o.VM, Index: i, Addr: a}
			if p, ok := e.opts["PORT"]; ok {
				if c.Port, err = onecontext.ParsePort(p); err != nil {
					skip("%s: not a port 1-65535", attr("PORT"))
					continue
				}
			} else if !f.AllPorts {
				skip("%s is not set", attr("PORT"))
				continue
			}
			// A server port is optional only for an all-ports LB (checked
			// again when the candidate meets its LB).
			s, err := f.server(e.server, !f.AllPorts)
			if err != nil {
				fe := err.(fieldError)
				if _, ok := e.server[fe.field]; ok {
					skip("%s: invalid (%s)", attr("SERVER_"+fe.field), describe(fe))
				} else {
					skip("%s is not set", attr("SERVER_"+fe.field))
				}
				continue
			}
			s.Dynamic, s.Source = true, fmt.Sprintf("VM %d", o.VM)
			c.Server = s
			out = append(out, c)
		}
	}
	return out, skips
}

// describe says what is wrong with a field without quoting the value.
func describe(fe fieldError) string {
	switch fe.field {
	case "HOST":
		return "not an IPv4 address or a host name"
	case "PORT":
		return "not a port 1-65535"
	case "WEIGHT":
		return "not a weight"
	}
	if strings.Contains(fe.msg, "below") {
		return "the lower limit must be below the upper one"
	}
	return "not a whole number"
}

// Merge adds the candidates to the static LBs and returns the result (the
// static LBs are not modified). A candidate joins the LB with the same
// index, address and port (no port for an all-ports LB); others are skipped.
// A candidate equal to a static server (the same LB.Key) sets that server's
// weight and limits, as in the original; the other dynamic servers follow
// the static ones, sorted by host and port, each once (the first VM wins).
func Merge(static []LB, cands []Candidate) ([]LB, []Skip) {
	var skips []Skip
	out := make([]LB, len(static))
	for i, l := range static {
		l.Servers = append([]Server{}, l.Servers...)
		out[i] = l
	}
	pos := map[[3]string]int{}
	for i, l := range out {
		pos[[3]string{fmt.Sprint(l.Index), l.Addr.String(), fmt.Sprint(l.Port)}] = i
	}
	extra := map[int][]Server{}
	for _, c := range cands {
		i, ok := pos[[3]string{fmt.Sprint(c.Index), c.Addr.String(), fmt.Sprint(c.Port)}]
		if !ok {
			skips = append(skips, Skip{VM: c.VM, Reason: fmt.Sprintf("LB%d %s matches no LB of this router (index, address and port must match a static one)", c.Index, c.endpoint())})
			continue
		}
		l := &out[i]
		s := c.Server
		if l.Port != 0 && s.Port == 0 {
			skips = append(skips, Skip{VM: c.VM, Reason: fmt.Sprintf("LB%d %s: the server has no port", c.Index, l.Endpoint())})
			continue
		}
		merged := false
		for k := range l.Servers {
			if !l.Servers[k].Dynamic && l.Key(l.Servers[k]) == l.Key(s) {
				l.Servers[k].Weight, l.Servers[k].ULimit, l.Servers[k].LLimit = s.Weight, s.ULimit, s.LLimit
				merged = true
				break
			}
		}
		if merged {
			continue
		}
		dup := false
		for _, x := range extra[i] {
			if l.Key(x) == l.Key(s) {
				dup = true
				break
			}
		}
		if !dup {
			extra[i] = append(extra[i], s)
		}
	}
	for i, ss := range extra {
		sort.SliceStable(ss, func(a, b int) bool {
			if ss[a].Host != ss[b].Host {
				return ss[a].Host < ss[b].Host
			}
			return ss[a].Port < ss[b].Port
		})
		out[i].Servers = append(out[i].Servers, ss...)
	}
	return out, skips
}
