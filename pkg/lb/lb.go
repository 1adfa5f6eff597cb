// Package lb is the backend model shared by one-lvs and one-haproxy
// (reference §2.11, without its bugs): load balancers and their servers from
// the static ONEAPP_VNF_LBx_* / ONEAPP_VNF_HAPROXY_LBx_* variables, dynamic
// servers that backend VMs publish in OneGate (ONEGATE_LBx_* /
// ONEGATE_HAPROXY_LBx_*), and the merge of the two.
//
// Rules:
//   - Static LBs are what the router serves. An LB's address is an IPv4
//     address or a placeholder (<ETHx_EPy> ...) and must be one the router
//     owns: the own address of a NIC of the family's INTERFACES list
//     (management NICs never) or a VIP of any NIC. Anything invalid is a
//     *onecontext.VarError naming the variable (exit 2): options without an
//     address, servers of an LB that has no address, a server without a host,
//     a missing port where the family needs one, a bad number.
//   - Dynamic servers come from OneGate objects (the leases with BACKEND=YES
//     of the router's networks, or the VMs of its OneFlow service). One
//     server per LB index per object; an LB index whose ID names another
//     router or service is ignored. A dynamic server joins only the static LB
//     with the same index, address and port; anything invalid is skipped
//     with a reason naming the VM, never an error.
//   - Every value that reaches a daemon's configuration is validated first:
//     addresses are netip.Addr, ports uint16, hosts an IPv4 address or an
//     RFC 1123 host name, numbers decimal. A backend VM cannot inject a
//     blank, a newline or any configuration syntax.
package lb

import (
	"fmt"
	"net/netip"
	"strconv"
)

// Family is one set of LB variables: LVS or HAProxy.
type Family struct {
	// Name is used in messages ("LVS", "HAProxy").
	Name string
	// Static is the prefix of the context variables ("ONEAPP_VNF_LB"),
	// Dynamic the prefix of the OneGate attributes ("ONEGATE_LB").
	StaticPrefix, DynamicPrefix string
	// Interfaces is the variable restricting the LB addresses to the own
	// addresses of some NICs ("ONEAPP_VNF_LB_INTERFACES").
	Interfaces string
	// AllPorts: an LB without a port balances every port, and a server
	// without a port keeps the client's (LVS). Otherwise ports are
	// mandatory.
	AllPorts bool
	// Options are the per-LB option suffixes the service reads besides IP
	// and PORT ("PROTOCOL", "BALANCE" ...); the service validates them.
	Options []string
	// Ignored are per-LB suffixes that are known but have no effect for
	// this family (reported, not errors).
	Ignored []string
	// MaxWeight bounds server weights (IPVS: 65535, HAProxy: 256).
	MaxWeight int
}

// LB is a load balancer: an address (and port) of the router and its
// servers.
type LB struct {
	Index int
	Addr  netip.Addr
	// Port is 0 when the LB balances every port (AllPorts families only).
	Port uint16
	// NIC owns Addr; Management says whether it is a management NIC.
	NIC        string
	Management bool
	// AddrVar is the variable that gave the address (for messages).
	AddrVar string
	// Options holds the raw values of the family's option suffixes that
	// are set, with the variable they came from.
	Options map[string]Option
	Servers []Server
}

// Option is one per-LB option value.
type Option struct {
	Var, Value string
}

// Opt returns the option called suffix ("PROTOCOL") and whether it is set.
func (l LB) Opt(suffix string) (Option, bool) {
	o, ok := l.Options[suffix]
	return o, ok
}

// Endpoint prints the LB's address and port ("10.0.0.1:80", "10.0.0.1:*").
func (l LB) Endpoint() string {
	if l.Port == 0 {
		return l.Addr.String() + ":*"
	}
	return netip.AddrPortFrom(l.Addr, l.Port).String()
}

// Server is one backend of an LB.
type Server struct {
	// Host is the validated host: an IPv4 address in dotted form or a
	// lower-case RFC 1123 host name. Addr is set when Host is an address.
	Host string
	Addr netip.Addr
	// Port is 0 when the server keeps the client's port (AllPorts families).
	Port uint16
	// Weight (default 1), ULimit and LLimit (0: no limit) as the guide's
	// WEIGHT, ULIMIT and LLIMIT.
	Weight         int
	ULimit, LLimit int
	// Dynamic servers came from OneGate; Source is the variable (static)
	// or "VM <id>" (dynamic) that defined the server.
	Dynamic bool
	Source  string
}

// HostPort prints the server ("10.0.0.5:8080", "web.example:80", "10.0.0.5").
func (s Server) HostPort() string {
	if s.Port == 0 {
		return s.Host
	}
	return s.Host + ":" + strconv.Itoa(int(s.Port))
}

// Key identifies a server within the LB by what the daemon serves: its host
// and port, where a server without a port has the LB's, and a server of an
// all-ports LB none (it keeps the client's port: its port only says where
// a health check connects). Two servers with the same key are one server to
// the daemon (keepalived rejects a configuration with a real server twice).
func (l LB) Key(s Server) string {
	switch {
	case l.Port == 0:
		return s.Host
	case s.Port == 0:
		return s.Host + ":" + strconv.Itoa(int(l.Port))
	}
	return s.HostPort()
}

// DefaultWeight is the weight of a server that does not set one.
const DefaultWeight = 1

// Skip is a dynamic entry left out, with the reason; logged as a warning
// naming the VM (never an error: OneGate values are not the context).
type Skip struct {
	VM     int
	Reason string
}

func (s Skip) String() string { return fmt.Sprintf("VM %d: %s", s.VM, s.Reason) }
