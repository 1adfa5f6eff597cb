// Package wg is one-wg, the WireGuard VPN server of the router (user guide
// "WireGuard VPN"): a WireGuard device whose first address of
// ONEAPP_VNF_WG_SUBNET is the server and whose following addresses are the
// ONEAPP_VNF_WG_PEERS peers, listening on ONEAPP_VNF_WG_LISTEN_PORT at the
// endpoint of ONEAPP_VNF_WG_INTERFACE_OUT and giving its peers the private
// network of ONEAPP_VNF_WG_INTERFACE_IN.
//
// The keys are the state that matters: clients hold them. The server
// configuration and every peer configuration are published, base64-encoded,
// to the user templates of the router's VMs through OneGate
// (ONEGATE_VNF_WG_SERVER, ONEGATE_VNF_WG_SERVER_TIMESTAMP,
// ONEGATE_VNF_WG_PEERn), and kept in a local copy (mode 0600). On start the
// newest stored configuration, by timestamp, across the router's VMs and the
// local copy, is reused, so a restart or a failover to another instance keeps
// every client working. Keys are generated in-process, and only when nothing
// usable is stored, when the subnet or port changed (a fresh configuration),
// or for peers added by a larger ONEAPP_VNF_WG_PEERS.
//
// The device is made through netlink in the kernel where it has WireGuard,
// and with wireguard-go (started and watched by one-wg) where it has not;
// wgctrl configures both. The usual three steps: FromContext (spec.go),
// Resolve and Render (store.go, render.go), Apply/Teardown/Inspect (apply.go).
package wg

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/hypercx/vrouter/pkg/onecontext"
)

// Context variables.
const (
	VarEnabled      = "ONEAPP_VNF_WG_ENABLED"
	VarInterfaceOut = "ONEAPP_VNF_WG_INTERFACE_OUT"
	VarInterfaceIn  = "ONEAPP_VNF_WG_INTERFACE_IN"
	VarListenPort   = "ONEAPP_VNF_WG_LISTEN_PORT"
	VarDevice       = "ONEAPP_VNF_WG_DEVICE"
	VarPeers        = "ONEAPP_VNF_WG_PEERS"
	VarSubnet       = "ONEAPP_VNF_WG_SUBNET"
)

// Defaults of the user guide.
const (
	DefaultListenPort = 51820
	DefaultDevice     = "wg0"
	DefaultPeers      = 5
	DefaultSubnet     = "169.254.33.0/24"
	// MaxPeers bounds ONEAPP_VNF_WG_PEERS: the server configuration, with a
	// [Peer] block per peer (about 210 bytes in base64 each), must stay
	// within what one user template attribute holds (64 KiB, see
	// onegate.CheckAttribute); 250 peers also fill the default /24.
	MaxPeers = 250
)

// Spec is the parsed context.
type Spec struct {
	Enabled bool
	Device  string
	Port    uint16
	Peers   int
	// Subnet is the peer network (host bits cleared); the server is its
	// first address, peer i the (i+2)th.
	Subnet netip.Prefix
	// Out is the NIC of the endpoint, In the NIC of the private network.
	Out, In string
	// Endpoint is Out's EP0 (its VIP0 when it has one, else its IP): the
	// address clients connect to.
	Endpoint netip.Addr
	// Private is In's network: what clients reach through the tunnel.
	Private netip.Prefix
}

// Server is the server's address in the peer network, with its prefix.
func (s Spec) Server() netip.Prefix {
	return netip.PrefixFrom(s.Subnet.Addr().Next(), s.Subnet.Bits())
}

// PeerAddr is peer i's (0-based) address.
func (s Spec) PeerAddr(i int) netip.Addr { return nth(s.Subnet.Addr(), uint32(i)+2) }

// EndpointAddr is where clients send their packets.
func (s Spec) EndpointAddr() netip.AddrPort { return netip.AddrPortFrom(s.Endpoint, s.Port) }

// nth returns a + n (IPv4).
func nth(a netip.Addr, n uint32) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += n
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// offset returns a - base (IPv4), or -1 when a is below base.
func offset(base, a netip.Addr) int64 {
	x, y := base.As4(), a.As4()
	u := func(b [4]byte) int64 { return int64(b[0])<<24 | int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3]) }
	if d := u(y) - u(x); d >= 0 {
		return d
	}
	return -1
}

// Device names: a Linux interface name (at most 15 bytes) that is also a
// plain sysctl path component (no dots), and not a NIC of the context.
var deviceRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,14}$`)
var nicRe = regexp.MustCompile(`^eth[0-9]+$`)

// ParseDevice checks a device name.
func ParseDevice(v string) (string, error) {
	d := strings.TrimSpace(v)
	if d == "" {
		return DefaultDevice, nil
	}
	switch {
	case !deviceRe.MatchString(d):
		return "", onecontext.Errorf(VarDevice, v, "not an interface name (a letter, then up to 14 letters, digits, '_' or '-')")
	case nicRe.MatchString(d) || d == "lo":
		return "", onecontext.Errorf(VarDevice, v, "the name of a NIC; choose another device name such as %s", DefaultDevice)
	}
	return d, nil
}

// DeviceOf returns the device named by the context, the default when the
// value is invalid (teardown must work on any context).
func DeviceOf(env onecontext.Env) string {
	d, err := ParseDevice(env.Get(VarDevice))
	if err != nil {
		return DefaultDevice
	}
	return d
}

// FromContext parses the WireGuard variables; every invalid value is
// reported, each naming its variable. A disabled service only needs its
// device name (to remove it).
func FromContext(env onecontext.Env) (Spec, error) {
	enabled, err := env.Bool(VarEnabled, false)
	if err != nil {
		return Spec{}, err
	}
	if !enabled {
		return Spec{Device: DeviceOf(env)}, nil
	}
	s := Spec{Enabled: true}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	s.Device, err = ParseDevice(env.Get(VarDevice))
	add(err)
	s.Port, err = env.Port(VarListenPort, DefaultListenPort)
	add(err)
	s.Peers, err = env.Int(VarPeers, DefaultPeers, 1, MaxPeers)
	add(err)
	top, err := env.Topology()
	if err != nil {
		return Spec{}, err
	}
	out, err := nicOf(top, env, VarInterfaceOut)
	add(err)
	if err == nil {
		ep, ok := out.EP(0)
		switch {
		case !ok:
			add(onecontext.Errorf(VarInterfaceOut, env.Get(VarInterfaceOut), "%s has no address (ETH%d_IP or a VIP) to be the endpoint", out.Name, out.Index))
		case !ep.Addr().Is4():
			add(onecontext.Errorf(VarInterfaceOut, env.Get(VarInterfaceOut), "%s's endpoint %s is not IPv4", out.Name, ep.Addr()))
		default:
			s.Out, s.Endpoint = out.Name, ep.Addr()
		}
	}
	in, err := nicOf(top, env, VarInterfaceIn)
	add(err)
	if err == nil {
		p := in.Subnet()
		switch {
		case !p.IsValid():
			add(onecontext.Errorf(VarInterfaceIn, env.Get(VarInterfaceIn), "%s has no address, so no private network to give the peers", in.Name))
		case !p.Addr().Is4():
			add(onecontext.Errorf(VarInterfaceIn, env.Get(VarInterfaceIn), "%s's network %s is not IPv4", in.Name, p))
		default:
			s.In, s.Private = in.Name, p
		}
	}
	s.Subnet, err = parseSubnet(env.Get(VarSubnet))
	add(err)
	if err == nil && s.Peers > 0 {
		// Every address but the network's and the broadcast one: the
		// server, then the peers.
		room := int64(1)<<(32-s.Subnet.Bits()) - 2
		if need := int64(s.Peers) + 1; room < need {
			add(onecontext.Errorf(VarSubnet, env.Get(VarSubnet), "room for %d addresses, but the server and %d peers (%s) need %d",
				max(room, 0), s.Peers, VarPeers, need))
		}
		for _, n := range top.NICs {
			if sub := n.Subnet(); sub.IsValid() && sub.Overlaps(s.Subnet) {
				add(onecontext.Errorf(VarSubnet, env.Get(VarSubnet), "overlaps %s's network %s; the peer network must be apart from the router's networks", n.Name, sub))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// nicOf reads a single-NIC variable: a NIC of the context that is not a
// management NIC.
func nicOf(top onecontext.Topology, env onecontext.Env, name string) (onecontext.NIC, error) {
	raw := env.Get(name)
	v := strings.ToLower(strings.TrimSpace(raw))
	switch {
	case v == "":
		return onecontext.NIC{}, onecontext.Errorf(name, raw, "required: the NIC name, e.g. eth0")
	case !nicRe.MatchString(v):
		return onecontext.NIC{}, onecontext.Errorf(name, raw, "not a NIC name (ethX)")
	}
	n, ok := top.NIC(v)
	switch {
	case !ok:
		return onecontext.NIC{}, onecontext.Errorf(name, raw, "the context has no NIC %s (known: %s)", v, strings.Join(top.Names(), " "))
	case n.Management:
		return onecontext.NIC{}, onecontext.Errorf(name, raw, "%s is a management NIC (ETH%d_VROUTER_MANAGEMENT=YES); services never use it", v, n.Index)
	}
	return n, nil
}

// parseSubnet reads the peer network: IPv4 CIDR, host bits cleared, room for
// at least a server and a peer.
func parseSubnet(raw string) (netip.Prefix, error) {
	v := strings.TrimSpace(raw)
	if v == "" {
		v = DefaultSubnet
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, onecontext.Errorf(VarSubnet, raw, "not an IPv4 network in CIDR form (e.g. %s)", DefaultSubnet)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, onecontext.Errorf(VarSubnet, raw, "not IPv4")
	}
	if p.Bits() > 30 {
		return netip.Prefix{}, onecontext.Errorf(VarSubnet, raw, "a /%d has no room for a server and a peer (at most /30)", p.Bits())
	}
	return p.Masked(), nil
}

// String describes the spec for logs (no keys in it).
func (s Spec) String() string {
	return fmt.Sprintf("device=%s endpoint=%s subnet=%s peers=%d private=%s", s.Device, s.EndpointAddr(), s.Subnet, s.Peers, s.Private)
}
