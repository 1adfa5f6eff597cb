package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/hypercx/vrouter/pkg/onecontext"
)

// Owner is what the context says about an address of the router.
type Owner struct {
	NIC        string
	Management bool
	VIP        bool
	// Allowed: an LB may use the address (the own address of a NIC of the
	// interface list that is not a management NIC, or any VIP).
	Allowed bool
}

// Owners maps every address of the context (NIC addresses and VIPs) to its
// NIC. sel is the family's interface list: own addresses of NICs outside it,
// and of management NICs, are not Allowed. VIPs are allowed whatever the NIC,
// as in the original (they move with VRRP and serve the LB wherever they are).
func Owners(top onecontext.Topology, sel onecontext.Selection) map[netip.Addr]Owner {
	out := map[netip.Addr]Owner{}
	for _, n := range top.NICs {
		if n.IP.IsValid() {
			out[n.IP.Addr()] = Owner{NIC: n.Name, Management: n.Management, Allowed: sel.Has(n.Name) && !n.Management}
		}
	}
	for _, n := range top.NICs {
		for _, v := range n.VIPs {
			if _, own := out[v.Prefix.Addr()]; own {
				continue
			}
			out[v.Prefix.Addr()] = Owner{NIC: n.Name, Management: n.Management, VIP: true, Allowed: true}
		}
	}
	return out
}

// rawLB gathers the variables of one static LB index.
type rawLB struct {
	index   int
	opts    map[string]Option
	servers map[int]serverFields
	first   Option // a variable of the index, for messages
}

// ParseStatic parses the family's static LBs from the context, sorted by index,
// with their servers sorted by server index. owners says which addresses the
// router owns (see Owners). Every problem is an error naming its variable;
// all of them are reported together. ignored lists the variables that are
// known but have no effect for this family.
func (f Family) ParseStatic(env onecontext.Env, top onecontext.Topology, owners map[netip.Addr]Owner) (lbs []LB, ignored []string, err error) {
	raws := map[int]*rawLB{}
	get := func(i int, o Option) *rawLB {
		r := raws[i]
		if r == nil {
			r = &rawLB{index: i, opts: map[string]Option{}, servers: map[int]serverFields{}, first: o}
			raws[i] = r
		}
		return r
	}
	var errs []error
	for _, name := range env.Names() {
		rest, ok := strings.CutPrefix(name, f.StaticPrefix)
		if !ok {
			continue
		}
		i, suffix, ok := cutIndex(rest)
		if !ok {
			continue
		}
		o := Option{Var: name, Value: env.Get(name)}
		if j, field, ok := serverField(suffix); ok {
			r := get(i, o)
			if r.servers[j] == nil {
				r.servers[j] = serverFields{}
			}
			r.servers[j][field] = o
			continue
		}
		switch {
		case suffix == "IP" || suffix == "PORT" || slices.Contains(f.Options, suffix):
			get(i, o).opts[suffix] = o
		case slices.Contains(f.Ignored, suffix):
			ignored = append(ignored, name)
		}
	}
	idx := make([]int, 0, len(raws))
	for i := range raws {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		l, err := f.staticLB(raws[i], top, owners)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lbs = append(lbs, l)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, ignored, err
	}
	return lbs, ignored, nil
}

func (f Family) lbName(i int) string { return fmt.Sprintf("%s%d", f.StaticPrefix, i) }

func (f Family) staticLB(r *rawLB, top onecontext.Topology, owners map[netip.Addr]Owner) (LB, error) {
	l := LB{Index: r.index, Options: map[string]Option{}}
	prefix := f.lbName(r.index)
	ip, ok := r.opts["IP"]
	if !ok {
		return l, onecontext.Errorf(r.first.Var, r.first.Value, "LB%d has no address: set %s_IP", r.index, prefix)
	}
	l.AddrVar = ip.Var
	a, err := top.ResolveAddr(ip.Value)
	if err != nil {
		return l, onecontext.Errorf(ip.Var, ip.Value, "%v", err)
	}
	l.Addr = a
	own, ok := owners[a]
	switch {
	case !ok:
		return l, onecontext.Errorf(ip.Var, ip.Value, "%s is not an address of this router (an LB listens on a NIC's address or a VIP)", a)
	case !own.Allowed && own.Management:
		return l, onecontext.Errorf(ip.Var, ip.Value, "%s is the address of %s, a management NIC: services never take it", a, own.NIC)
	case !own.Allowed:
		return l, onecontext.Errorf(ip.Var, ip.Value, "%s is the address of %s, which %s leaves out", a, own.NIC, f.Interfaces)
	}
	l.NIC, l.Management = own.NIC, own.Management
	if p, ok := r.opts["PORT"]; ok {
		port, err := onecontext.ParsePort(p.Value)
		if err != nil {
			return l, onecontext.Errorf(p.Var, p.Value, "%v", err)
		}
		l.Port = port
	} else if !f.AllPorts {
		return l, onecontext.Errorf(ip.Var, ip.Value, "LB%d has no port: set %s_PORT", r.index, prefix)
	}
	for k, o := range r.opts {
		if k != "IP" && k != "PORT" {
			l.Options[k] = o
		}
	}
	js := make([]int, 0, len(r.servers))
	for j := range r.servers {
		js = append(js, j)
	}
	sort.Ints(js)
	var errs []error
	seen := map[string]string{}
	for _, j := range js {
		fields := r.servers[j]
		s, err := f.server(fields, !f.AllPorts)
		if err != nil {
			fe := err.(fieldError)
			o, ok := fields[fe.field]
			if !ok {
				o = anyField(fields)
				fe.msg = fmt.Sprintf("server %d of LB%d has %s: set %s_SERVER%d_%s", j, r.index, fe.msg, prefix, j, fe.field)
			}
			errs = append(errs, onecontext.Errorf(o.Var, o.Value, "%s", fe.msg))
			continue
		}
		s.Source = fmt.Sprintf("%s_SERVER%d", prefix, j)
		if other, dup := seen[l.Key(s)]; dup {
			h := fields["HOST"]
			errs = append(errs, onecontext.Errorf(h.Var, h.Value, "%s is already a server of LB%d %s (%s)", l.Key(s), r.index, l.Endpoint(), other))
			continue
		}
		seen[l.Key(s)] = s.Source
		l.Servers = append(l.Servers, s)
	}
	return l, errors.Join(errs...)
}

// anyField returns the variable of a server that sorts first, for messages.
func anyField(fields serverFields) Option {
	var names []string
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return fields[names[0]]
}
