// Package sdnat4 is the SDNAT4 module: public addresses mapped 1:1 to VMs
// behind the router. A VM gets a public address as an EXTERNAL NIC alias on
// a public network; the router finds these leases through OneGate, pairs each
// with the same VM's address on the alias's parent network (inside the
// subnets of ONEAPP_VNF_SDNAT4_INTERFACES), and maps the pair both ways: DNAT
// in chain DNAT4, SNAT in chain SNAT4 (hooked first in PREROUTING and
// POSTROUTING, ahead of NAT4), and the public address as a /32 on lo
// labelled SDNAT4 so the router answers ARP for it. A daemon polls OneGate
// every ONEAPP_VNF_SDNAT4_REFRESH_RATE seconds.
package sdnat4

import (
	"errors"
	"net/netip"
	"time"

	"github.com/hypercx/vrouter/pkg/conntrackd"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/onegate"
)

// Context variables.
const (
	VarEnabled     = "ONEAPP_VNF_SDNAT4_ENABLED"
	VarInterfaces  = "ONEAPP_VNF_SDNAT4_INTERFACES"
	VarRefreshRate = "ONEAPP_VNF_SDNAT4_REFRESH_RATE"
)

// Refresh rate bounds. The original took any integer, and a non-number
// became 0: a busy loop against OneGate.
const (
	DefaultRefresh = 30 * time.Second
	MinRefresh     = time.Second
	MaxRefresh     = 24 * time.Hour
)

// Subnet is a network behind an SDNAT4 interface: a VM's parent lease must
// lie in one of them to be mapped.
type Subnet struct {
	NIC    string
	Prefix netip.Prefix
}

// NIC is a non-management NIC of the router with its network; the NIC whose
// network holds an external address is where that address's traffic
// leaves (SNAT is restricted to it).
type NIC struct {
	Name   string
	Subnet netip.Prefix
}

// Spec is the parsed context.
type Spec struct {
	Enabled bool
	Refresh time.Duration
	// Subnets of the SDNAT4 interfaces (management NICs excluded), in NIC order.
	Subnets []Subnet
	// NoSubnet are SDNAT4 interfaces with no address (nothing to match).
	NoSubnet []string
	// Skipped are management NICs named in the interface list (ignored).
	Skipped []string
	// Management NICs: SDNAT4 never translates traffic entering or leaving them.
	Management []string
	// NICs are the router's non-management NICs that have a network.
	NICs []NIC
	// ManagementNets are the networks of the management NICs: addresses in
	// them are never mapped.
	ManagementNets []netip.Prefix
	// Own are the router's own addresses (IPs and VIPs of every NIC): an
	// external or internal address equal to one of them is never mapped.
	Own map[netip.Addr]bool
	// SNATTo maps a NIC to its VIP when connections are synced between
	// routers (ONEAPP_VNF_CONNTRACKD_ENABLED=YES): hairpin connections are
	// then translated to the VIP, like NAT4's, instead of masqueraded.
	SNATTo map[string]netip.Addr
	// OneGate is where mappings are discovered (zero when disabled).
	OneGate onegate.Config
}

// FromContext parses the SDNAT4 variables and, when SDNAT4 is enabled, the
// OneGate ones (ONEGATE_ENDPOINT, TOKENTXT, VMID,
// ONEAPP_VNF_ONEGATE_SKIP_TLS_VERIFY; root is where the token file is
// looked for). Every invalid value is reported, each naming its variable.
func FromContext(env onecontext.Env, root fsroot.Root) (Spec, error) {
	var errs []error
	enabled, err := env.Bool(VarEnabled, false)
	errs = append(errs, err)
	refresh, err := env.Seconds(VarRefreshRate, DefaultRefresh, MinRefresh, MaxRefresh)
	errs = append(errs, err)
	synced, err := env.Bool(conntrackd.VarEnabled, false)
	errs = append(errs, err)
	top, err := env.Topology()
	if err != nil {
		return Spec{}, errors.Join(append(errs, err)...)
	}
	sel, err := top.Interfaces(VarInterfaces, env.Get(VarInterfaces), onecontext.EmptyNone)
	errs = append(errs, err)
	sel, skipped := sel.WithoutManagement(top)
	s := Spec{Enabled: enabled, Refresh: refresh, Skipped: skipped, Management: top.Management(), Own: map[netip.Addr]bool{}}
	for _, name := range sel.NICs {
		n, _ := top.NIC(name)
		if p := n.Subnet(); p.IsValid() && p.Addr().Is4() {
			s.Subnets = append(s.Subnets, Subnet{NIC: name, Prefix: p})
		} else {
			s.NoSubnet = append(s.NoSubnet, name)
		}
	}
	for _, n := range top.NICs {
		if n.IP.IsValid() {
			s.Own[n.IP.Addr()] = true
		}
		for _, v := range n.VIPs {
			s.Own[v.Prefix.Addr()] = true
		}
		if n.Management {
			if p := n.Subnet(); p.IsValid() {
				s.ManagementNets = append(s.ManagementNets, p)
			}
			continue
		}
		if p := n.Subnet(); p.IsValid() && p.Addr().Is4() {
			s.NICs = append(s.NICs, NIC{Name: n.Name, Subnet: p})
		}
		if synced && len(n.VIPs) > 0 {
			if s.SNATTo == nil {
				s.SNATTo = map[string]netip.Addr{}
			}
			s.SNATTo[n.Name] = n.VIPs[0].Prefix.Addr()
		}
	}
	if enabled {
		cfg, err := onegate.ConfigFromContext(env, root)
		if errors.Is(err, onegate.ErrNotConfigured) {
			err = onecontext.Errorf(onegate.VarEndpoint, env.Get(onegate.VarEndpoint),
				"SDNAT4 discovers its mappings through OneGate, and the context has no OneGate endpoint (give the router VM TOKEN=YES)")
		}
		errs = append(errs, err)
		s.OneGate = cfg
	}
	if err := errors.Join(errs...); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// subnetOf returns the SDNAT4 subnet holding a.
func (s Spec) subnetOf(a netip.Addr) (Subnet, bool) {
	for _, sn := range s.Subnets {
		if sn.Prefix.Contains(a) {
			return sn, true
		}
	}
	return Subnet{}, false
}

// nicsOf returns the non-management NICs whose network holds a.
func (s Spec) nicsOf(a netip.Addr) []string {
	var out []string
	for _, n := range s.NICs {
		if n.Subnet.Contains(a) {
			out = append(out, n.Name)
		}
	}
	return out
}

// inManagement reports whether a lies in a management NIC's network.
func (s Spec) inManagement(a netip.Addr) bool {
	for _, p := range s.ManagementNets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
