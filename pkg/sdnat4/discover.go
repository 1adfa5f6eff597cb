package sdnat4

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/hypercx/vrouter/pkg/onegate"
)

// Mapping is one public address mapped 1:1 to a VM's private address.
type Mapping struct {
	External netip.Addr // the EXTERNAL alias's lease
	Internal netip.Addr // the same VM's lease on the alias's parent network
	VM       int
	// In is the SDNAT4 NIC whose network holds Internal.
	In string
	// Out is the NIC whose network holds External: the VM's traffic is
	// translated when it leaves there. "" when no NIC of the router is on
	// that network (a routed block): then whatever NIC it leaves by, as
	// the original did.
	Out string
	// Lease names the external lease, for logs.
	Lease string
}

func (m Mapping) String() string { return m.External.String() + " -> " + m.Internal.String() }

// Skip is an external lease that is not mapped, and why.
type Skip struct {
	Lease  string
	Reason string
	// Foreign marks a lease that is another router's business (its
	// parent network is not one of this router's networks): not a
	// warning, just not ours.
	Foreign bool
}

func (s Skip) String() string { return s.Lease + ": " + s.Reason }

// leaseName names a lease for warnings: where it is and what OneGate says
// it holds.
func leaseName(n *onegate.VNet, ar onegate.AR, i int, l onegate.Lease) string {
	var b strings.Builder
	fmt.Fprintf(&b, "vnet %d AR %d lease %d (", n.ID, ar.ID, i)
	var parts []string
	if l.IP.IsValid() {
		parts = append(parts, "IP "+l.IP.String())
	} else {
		parts = append(parts, "no IP")
	}
	if l.VM != onegate.None {
		parts = append(parts, "VM "+strconv.Itoa(l.VM))
	}
	if l.NICName != "" {
		parts = append(parts, l.NICName)
	}
	b.WriteString(strings.Join(parts, ", ") + ")")
	return b.String()
}

type vmNet struct{ vm, net int }

// Discover finds the mappings in the router's networks (as
// onegate.Client.Networks returns them): every lease marked EXTERNAL, paired
// with the same VM's lease on the network the lease names as its parent's
// (PARENT_NETWORK_ID), preferring the lease of the parent NIC itself. A
// pair is mapped when the private address lies in an SDNAT4 subnet. Every
// external lease that cannot be mapped is returned as a Skip naming it.
// The result is sorted by public address; an address claimed by leases
// that disagree is not mapped at all.
func Discover(nets []onegate.VNet, s Spec) ([]Mapping, []Skip) {
	known := map[int]bool{}
	parents := map[vmNet][]onegate.Lease{}
	for _, n := range nets {
		known[n.ID] = true
		for _, ar := range n.ARs {
			for _, l := range ar.Leases {
				// An alias is never the address its siblings map to.
				if l.VM != onegate.None && l.Parent == "" && !l.External {
					k := vmNet{l.VM, n.ID}
					parents[k] = append(parents[k], l)
				}
			}
		}
	}
	var maps []Mapping
	var skips []Skip
	for ni := range nets {
		n := &nets[ni]
		for _, ar := range n.ARs {
			for i, l := range ar.Leases {
				if !l.External {
					continue
				}
				name := leaseName(n, ar, i, l)
				m, reason, foreign := pair(s, l, known, parents[vmNet{l.VM, l.ParentNetworkID}])
				if reason != "" {
					skips = append(skips, Skip{Lease: name, Reason: reason, Foreign: foreign})
					continue
				}
				m.Lease = name
				maps = append(maps, m)
			}
		}
	}
	slices.SortStableFunc(maps, func(a, b Mapping) int { return a.External.Compare(b.External) })
	// The same public address twice: fine when the pairs agree (a lease
	// seen through two networks), refused when they do not.
	var out []Mapping
	for i := 0; i < len(maps); {
		j := i + 1
		agree := true
		for j < len(maps) && maps[j].External == maps[i].External {
			agree = agree && maps[j].Internal == maps[i].Internal
			j++
		}
		if agree {
			out = append(out, maps[i])
		} else {
			for _, m := range maps[i:j] {
				skips = append(skips, Skip{Lease: m.Lease, Reason: fmt.Sprintf("%s is claimed by %d leases mapping it to different addresses; none is mapped", m.External, j-i)})
			}
		}
		i = j
	}
	return out, skips
}

// pair checks one external lease and pairs it with its VM's parent lease.
func pair(s Spec, l onegate.Lease, known map[int]bool, candidates []onegate.Lease) (Mapping, string, bool) {
	switch {
	case !l.IP.IsValid() || !l.IP.Is4():
		return Mapping{}, "no valid IPv4 address (SDNAT4 maps IPv4 only)", false
	case !l.IP.IsGlobalUnicast():
		// 0.0.0.0, loopback, link-local, multicast, broadcast: no
		// address to map, and the kernel would take most of them on lo.
		return Mapping{}, fmt.Sprintf("%s is not a unicast address", l.IP), false
	case l.VM == onegate.None:
		return Mapping{}, "held by no VM", false
	case l.ParentNetworkID == onegate.None:
		return Mapping{}, "names no parent network (PARENT_NETWORK_ID)", false
	case !known[l.ParentNetworkID]:
		return Mapping{}, fmt.Sprintf("its parent network %d is not one of this router's networks", l.ParentNetworkID), true
	case len(candidates) == 0:
		return Mapping{}, fmt.Sprintf("VM %d has no lease on the alias's parent network %d", l.VM, l.ParentNetworkID), false
	}
	parent := candidates[0]
	for _, c := range candidates {
		if l.Parent != "" && c.NICName == l.Parent {
			parent = c
			break
		}
	}
	in := parent.IP
	sn, inSubnet := s.subnetOf(in)
	switch {
	case !in.IsValid() || !in.Is4():
		return Mapping{}, fmt.Sprintf("VM %d's lease on its parent network %d has no valid IPv4 address", l.VM, l.ParentNetworkID), false
	case !in.IsGlobalUnicast():
		return Mapping{}, fmt.Sprintf("the parent lease %s is not a unicast address", in), false
	case !inSubnet:
		return Mapping{}, fmt.Sprintf("the parent lease %s is outside the SDNAT4 subnets (%s)", in, s.subnetList()), false
	case s.Own[l.IP]:
		return Mapping{}, fmt.Sprintf("%s is one of the router's own addresses", l.IP), false
	case s.Own[in]:
		return Mapping{}, fmt.Sprintf("the parent lease %s is one of the router's own addresses", in), false
	case s.inManagement(l.IP):
		return Mapping{}, fmt.Sprintf("%s lies in a management network", l.IP), false
	}
	m := Mapping{External: l.IP, Internal: in, VM: l.VM, In: sn.NIC}
	if out := s.nicsOf(l.IP); len(out) > 0 {
		m.Out = out[0]
	}
	return m, "", false
}

func (s Spec) subnetList() string {
	if len(s.Subnets) == 0 {
		return "none: " + VarInterfaces + " selects no NIC with an address"
	}
	var parts []string
	for _, sn := range s.Subnets {
		parts = append(parts, sn.Prefix.String()+" on "+sn.NIC)
	}
	return strings.Join(parts, ", ")
}
