// Package nat4 is the NAT4 module: MASQUERADE out of the
// ONEAPP_VNF_NAT4_INTERFACES_OUT NICs (chain NAT4-MASQ) and the static port
// forwards ONEAPP_VNF_NAT4_PORT_FWDn as TCP and UDP DNAT (chain NAT4-DNAT),
// with hairpin NAT so VMs behind the router reach forwarded ports on the
// public address too.
package nat4

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/hypercx/vrouter/pkg/conntrackd"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

// Context variables.
const (
	VarEnabled       = "ONEAPP_VNF_NAT4_ENABLED"
	VarInterfacesOut = "ONEAPP_VNF_NAT4_INTERFACES_OUT"
	VarPortFwd       = "ONEAPP_VNF_NAT4_PORT_FWD" // + index
)

// PortForward is one ONEAPP_VNF_NAT4_PORT_FWDn:
// [old_dest:]old_port:new_dest[:new_port].
type PortForward struct {
	Var string // the variable it came from
	// Addr is old_dest; invalid means "addressed to the router itself".
	Addr   netip.Addr
	Port   uint16
	ToAddr netip.Addr
	ToPort uint16 // 0: unchanged
}

// Hairpin is a NIC whose VMs are forward targets: connections DNATed back out
// of it from its own subnet are masqueraded so replies return via the router.
type Hairpin struct {
	NIC    string
	Subnet netip.Prefix
}

// Spec is the parsed context.
type Spec struct {
	Enabled  bool
	Out      []string // NICs to masquerade out of, index order
	Forwards []PortForward
	Hairpins []Hairpin
	// Management NICs: traffic entering them is never forwarded.
	Management []string
	// Skipped are management NICs named in INTERFACES_OUT (ignored).
	Skipped []string
	// SNATTo maps a NIC to the VIP connections leaving it are translated
	// to instead of masquerading (ONEAPP_VNF_CONNTRACKD_ENABLED=YES): the
	// routers of a failover group then translate alike, and connections
	// synced by conntrackd stay valid on the new master.
	SNATTo map[string]netip.Addr
}

// FromContext parses the NAT4 variables; every invalid value is reported,
// each naming its variable.
func FromContext(env onecontext.Env) (Spec, error) {
	enabled, err := env.Bool(VarEnabled, false)
	if err != nil {
		return Spec{}, err
	}
	synced, err := env.Bool(conntrackd.VarEnabled, false)
	if err != nil {
		return Spec{}, err
	}
	top, err := env.Topology()
	if err != nil {
		return Spec{}, err
	}
	var errs []error
	sel, err := top.Interfaces(VarInterfacesOut, env.Get(VarInterfacesOut), onecontext.EmptyNone)
	if err != nil {
		errs = append(errs, err)
	}
	sel, skipped := sel.WithoutManagement(top)
	spec := Spec{Enabled: enabled, Out: sel.NICs, Skipped: skipped, Management: top.Management()}
	for _, v := range env.Indexed(VarPortFwd) {
		if strings.TrimSpace(v.Value) == "" {
			continue
		}
		pf, err := ParsePortForward(top, v.Value)
		if err != nil {
			errs = append(errs, onecontext.Errorf(v.Name, v.Value, "%v", err))
			continue
		}
		pf.Var = v.Name
		spec.Forwards = append(spec.Forwards, pf)
	}
	if err := errors.Join(errs...); err != nil {
		return Spec{}, err
	}
	seen := map[string]bool{}
	for _, pf := range spec.Forwards {
		for _, n := range top.NICOf(pf.ToAddr) {
			if n.Management || seen[n.Name] {
				continue
			}
			seen[n.Name] = true
			spec.Hairpins = append(spec.Hairpins, Hairpin{NIC: n.Name, Subnet: n.Subnet()})
		}
	}
	if synced {
		spec.SNATTo = map[string]netip.Addr{}
		for _, n := range top.NICs {
			if len(n.VIPs) > 0 {
				spec.SNATTo[n.Name] = n.VIPs[0].Prefix.Addr()
			}
		}
	}
	return spec, nil
}

// ParsePortForward parses [old_dest:]old_port:new_dest[:new_port]; old_dest
// may be a placeholder such as <ETH0_EP0>.
func ParsePortForward(top onecontext.Topology, s string) (PortForward, error) {
	fields := strings.Split(strings.TrimSpace(s), ":")
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	if len(fields) < 2 || len(fields) > 4 {
		return PortForward{}, fmt.Errorf("want [old_dest:]old_port:new_dest[:new_port], got %d fields", len(fields))
	}
	var pf PortForward
	rest := fields
	// old_dest is present when the first field is not a number (a port).
	if strings.Trim(fields[0], "0123456789") != "" {
		a, err := top.ResolveAddr(fields[0])
		if err != nil {
			return pf, fmt.Errorf("old destination: %v", err)
		}
		pf.Addr = a
		rest = fields[1:]
	}
	if len(rest) < 2 || len(rest) > 3 {
		return pf, fmt.Errorf("want [old_dest:]old_port:new_dest[:new_port]")
	}
	var err error
	if pf.Port, err = onecontext.ParsePort(rest[0]); err != nil {
		return pf, fmt.Errorf("old port: %v", err)
	}
	if pf.ToAddr, err = netip.ParseAddr(rest[1]); err != nil || !pf.ToAddr.Is4() {
		return pf, fmt.Errorf("new destination %q is not an IPv4 address", rest[1])
	}
	if len(rest) == 3 && rest[2] != "" {
		if pf.ToPort, err = onecontext.ParsePort(rest[2]); err != nil {
			return pf, fmt.Errorf("new port: %v", err)
		}
	}
	return pf, nil
}
