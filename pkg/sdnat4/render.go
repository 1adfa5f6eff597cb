package sdnat4

import (
	"net/netip"
	"slices"

	"github.com/hypercx/vrouter/pkg/netfilter"
)

// Owner, chains and the lo label, named as the user guide shows them.
const (
	Owner     = "one-sdnat4"
	ChainSNAT = "SNAT4"
	ChainDNAT = "DNAT4"
	Dev       = "lo"
	Label     = "SDNAT4"
)

// Skeleton is the ruleset with every chain SDNAT4 owns, empty: what stop
// removes. Both chains are hooked first, ahead of NAT4's: a mapped VM's
// traffic leaves with its public address, not the router's, and a
// connection to a public address is mapped before any port forward.
func Skeleton() netfilter.Ruleset {
	return netfilter.Ruleset{
		Owner: Owner,
		Tables: []netfilter.Table{{Name: "nat", Chains: []netfilter.Chain{
			{Name: ChainDNAT}, {Name: ChainSNAT},
		}}},
		Jumps: []netfilter.Jump{
			{Table: "nat", From: "PREROUTING", To: ChainDNAT, First: true},
			{Table: "nat", From: "POSTROUTING", To: ChainSNAT, First: true},
		},
	}
}

// Desired is everything SDNAT4 keeps in the kernel for a set of mappings.
type Desired struct {
	Rules netfilter.Ruleset
	// Addrs are the public addresses, each a /32 on lo labelled SDNAT4.
	Addrs    []netip.Prefix
	Mappings []Mapping
}

// Render builds the rules and addresses of maps (sorted by public address,
// as Discover returns them). Rules are written exactly as iptables-save
// prints them, so an unchanged set is recognised and not re-applied.
//
// DNAT4: each public address to its private one. SNAT4: a mapped VM's
// traffic leaving by the NIC of its public address's network leaves with
// that address (a VM with several public addresses uses the first); a
// connection DNATed back into a network (hairpin: a VM reaching a public
// address mapped to a neighbour) is translated too, so the reply returns
// through the router: to the VM's own public address when it has one, else
// to the router's address (its VIP when connections are synced).
// Management NICs are never translated.
func Render(s Spec, maps []Mapping) Desired {
	rs := Skeleton()
	chains := rs.Tables[0].Chains
	dnat, snat := &chains[0], &chains[1]
	d := Desired{Rules: rs, Mappings: maps}
	if len(maps) == 0 {
		return d
	}
	for _, m := range s.Management {
		dnat.Rules = append(dnat.Rules, "-i "+m+" -j RETURN")
		snat.Rules = append(snat.Rules, "-o "+m+" -j RETURN")
	}
	first := map[netip.Addr]Mapping{} // each VM address's first public address
	var order []netip.Addr
	var ins []string
	for _, m := range maps {
		dnat.Rules = append(dnat.Rules, "-d "+host(m.External)+" -j DNAT --to-destination "+m.Internal.String())
		d.Addrs = append(d.Addrs, netip.PrefixFrom(m.External, 32))
		if _, ok := first[m.Internal]; !ok {
			first[m.Internal] = m
			order = append(order, m.Internal)
		}
		if !slices.Contains(ins, m.In) {
			ins = append(ins, m.In)
		}
	}
	// SNAT: each VM address once, to its first public address, when the
	// connection leaves by the NIC of that address's network or was DNATed
	// (hairpin). The NIC most mappings leave by gets one gate rule and
	// one SNAT rule per mapping, which is what iptables -L shows in the
	// user guide; mappings of other public networks get two rules each.
	main := mainOut(order, first)
	for _, a := range order {
		switch m := first[a]; {
		case m.Out == main:
		case m.Out == "":
			snat.Rules = append(snat.Rules, "-s "+host(a)+" -j SNAT --to-source "+m.External.String())
		default:
			snat.Rules = append(snat.Rules,
				"-s "+host(a)+" -o "+m.Out+" -j SNAT --to-source "+m.External.String(),
				"-s "+host(a)+" -m conntrack --ctstate DNAT -j SNAT --to-source "+m.External.String())
		}
	}
	if main != "" {
		snat.Rules = append(snat.Rules, "! -o "+main+" -m conntrack ! --ctstate DNAT -j RETURN")
	}
	for _, a := range order {
		if m := first[a]; m.Out == main {
			snat.Rules = append(snat.Rules, "-s "+host(a)+" -j SNAT --to-source "+m.External.String())
		}
	}
	for _, sn := range s.Subnets {
		if !slices.Contains(ins, sn.NIC) {
			continue
		}
		target := "-j MASQUERADE"
		if vip, ok := s.SNATTo[sn.NIC]; ok {
			target = "-j SNAT --to-source " + vip.String()
		}
		snat.Rules = append(snat.Rules, "-s "+sn.Prefix.String()+" -o "+sn.NIC+" -m conntrack --ctstate DNAT "+target)
	}
	return d
}

// mainOut is the NIC most mappings leave by ("" for "any NIC"); ties go to
// the first in address order.
func mainOut(order []netip.Addr, first map[netip.Addr]Mapping) string {
	count := map[string]int{}
	best := ""
	for _, a := range order {
		out := first[a].Out
		count[out]++
		if count[out] > count[best] || (len(count) == 1) {
			best = out
		}
	}
	return best
}

func host(a netip.Addr) string { return a.String() + "/32" }
