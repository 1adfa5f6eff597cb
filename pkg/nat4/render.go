package nat4

import (
	"fmt"
	"strconv"

	"github.com/hypercx/vrouter/pkg/netfilter"
)

// Owner and chains, named as the user guide shows them.
const (
	Owner     = "one-nat4"
	ChainMASQ = "NAT4-MASQ"
	ChainDNAT = "NAT4-DNAT"
)

// Skeleton is the ruleset with every chain NAT4 owns, empty: what stop removes.
func Skeleton() netfilter.Ruleset {
	return netfilter.Ruleset{
		Owner: Owner,
		Tables: []netfilter.Table{{Name: "nat", Chains: []netfilter.Chain{
			{Name: ChainDNAT}, {Name: ChainMASQ},
		}}},
		Jumps: []netfilter.Jump{
			{Table: "nat", From: "PREROUTING", To: ChainDNAT},
			{Table: "nat", From: "POSTROUTING", To: ChainMASQ},
		},
	}
}

// Render builds the NAT4 ruleset. Rules are written exactly as iptables-save
// prints them, so an unchanged context is recognised and not re-applied.
func Render(s Spec) netfilter.Ruleset {
	rs := Skeleton()
	chains := rs.Tables[0].Chains
	dnat, masq := &chains[0], &chains[1]
	if len(s.Forwards) > 0 {
		// Port forwards never apply to traffic entering a management NIC.
		for _, m := range s.Management {
			dnat.Rules = append(dnat.Rules, "-i "+m+" -j RETURN")
		}
	}
	for _, pf := range s.Forwards {
		for _, proto := range []string{"tcp", "udp"} {
			dnat.Rules = append(dnat.Rules, dnatRule(pf, proto))
		}
	}
	for _, h := range s.Hairpins {
		masq.Rules = append(masq.Rules, fmt.Sprintf("-s %s -o %s -m conntrack --ctstate DNAT %s", h.Subnet, h.NIC, s.target(h.NIC)))
	}
	for _, n := range s.Out {
		masq.Rules = append(masq.Rules, "-o "+n+" "+s.target(n))
	}
	return rs
}

// target translates to the NIC's VIP when connections are synced between
// routers (SNATTo), else masquerades to the router's own address.
func (s Spec) target(nic string) string {
	if vip, ok := s.SNATTo[nic]; ok {
		return "-j SNAT --to-source " + vip.String()
	}
	return "-j MASQUERADE"
}

func dnatRule(pf PortForward, proto string) string {
	to := pf.ToAddr.String()
	if pf.ToPort != 0 {
		to += ":" + strconv.Itoa(int(pf.ToPort))
	}
	return dnatMatch(pf, proto) + " -j DNAT --to-destination " + to
}

// dnatMatch is the part of a forward's rule that picks its packets.
// UDP ports are matched with multiport: iptables parses `-m udp --dport`
// through getaddrinfo (a netlink address dump and two connects per rule),
// which made the UDP half of 10,000 forwards cost twice the TCP half in
// iptables-restore; multiport parses numbers itself. TCP keeps `-m tcp`,
// which iptables-nft compiles to native payload matches.
func dnatMatch(pf PortForward, proto string) string {
	port := strconv.Itoa(int(pf.Port))
	ports := "-m tcp --dport " + port
	if proto == "udp" {
		ports = "-m multiport --dports " + port
	}
	if pf.Addr.IsValid() {
		return "-d " + pf.Addr.String() + "/32 -p " + proto + " " + ports
	}
	// Without old_dest: only traffic addressed to the router itself, never
	// traffic passing through to other hosts.
	return "-p " + proto + " -m addrtype --dst-type LOCAL " + ports
}
