// Package dhcp4 is the DHCP4 module (one-dhcp4v2): a DHCP server for the
// isolated networks behind the router, running in-process on coredhcp's
// configuration format and plugin API with our own plugins (package
// onelease). Each served NIC gets its own server bound to that NIC, with its
// own pool, options and lease file.
//
// Parse → render → apply: FromContext turns the ONEAPP_VNF_DHCP4_* and ETHx_*
// variables into a Spec; Render turns it into onelease-config.yml (coredhcp's
// YAML, one server per NIC); the daemon (Serve) loads that file, checked by
// coredhcp's own config loader, and serves it until SIGTERM, re-reading it on
// SIGHUP.
package dhcp4

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hypercx/vrouter/pkg/dns"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

// Context variables.
const (
	VarEnabled       = "ONEAPP_VNF_DHCP4_ENABLED"
	VarInterfaces    = "ONEAPP_VNF_DHCP4_INTERFACES"
	VarAuthoritative = "ONEAPP_VNF_DHCP4_AUTHORITATIVE"
	VarLeaseTime     = "ONEAPP_VNF_DHCP4_LEASE_TIME"
	VarDNS           = "ONEAPP_VNF_DHCP4_DNS"
	VarGateway       = "ONEAPP_VNF_DHCP4_GATEWAY"
	VarMAC2IP        = "ONEAPP_VNF_DHCP4_MAC2IP_ENABLED"
	VarMACPrefix     = "ONEAPP_VNF_DHCP4_MAC2IP_MACPREFIX"
	// VarNIC is the prefix of the per-NIC variables: ONEAPP_VNF_DHCP4_ETH1
	// (pool), ONEAPP_VNF_DHCP4_ETH1_DNS, _GATEWAY, _MTU, _LEASE_TIME.
	VarNIC = "ONEAPP_VNF_DHCP4_ETH"
)

// Paths.
const (
	// ConfigPath is the file `configure` writes and the daemon serves (the
	// guide's table spells the directory VRRouter).
	ConfigPath = "/etc/one-appliance/service.d/VRRouter/DHCP4v2/coredhcp-onelease/onelease-config.yml"
	// LeaseDir holds one lease log per NIC.
	LeaseDir = "/var/lib/one-appliance/dhcp4"
	// StatePath is where the running daemon says what it serves (for status and stop).
	StatePath = "/run/one-dhcp4v2.state"
	// LockPath keeps a second daemon from serving the same leases.
	LockPath = "/run/one-dhcp4v2.lock"
)

// Defaults.
const (
	DefaultLeaseTime = time.Hour
	DefaultMACPrefix = "02:00"
	MinLeaseTime     = time.Minute
	MaxLeaseTime     = 365 * 24 * time.Hour
)

// Server is the DHCP server of one NIC.
type Server struct {
	NIC      string
	ServerID netip.Addr   // the router's endpoint EP0 on the NIC (its VIP0 when set)
	Subnet   netip.Prefix // netmask option and pool bounds
	// Start and End bound the pool; Excluded are the addresses inside it that
	// are never leased (the router's own, VIPs, gateways, DNS servers,
	// network and broadcast), sorted.
	Start, End netip.Addr
	Excluded   []netip.Addr
	Routers    []netip.Addr
	DNS        []netip.Addr
	// DNSFrom says where DNS came from (for logs and status).
	DNSFrom string
	// MTU is the interface-MTU option; 0 means the link's MTU, read when the
	// server starts.
	MTU           int
	LeaseTime     time.Duration
	MAC2IP        bool
	MACPrefix     string // "02:00"
	Authoritative bool
	LeaseFile     string
}

// Skip is a selected NIC that gets no server, and why.
type Skip struct {
	NIC, Reason string
}

// Spec is the parsed context.
type Spec struct {
	Enabled bool
	Servers []Server
	// Skipped NICs are logged as warnings; they never stop the other NICs.
	Skipped []Skip
}

var macPrefixRe = regexp.MustCompile(`^[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}$`)

// FromContext parses the DHCP4 variables. Every invalid value is reported,
// each naming its variable; nothing of a context with an error is served.
func FromContext(_ context.Context, env onecontext.Env) (Spec, error) {
	enabled, err := env.Bool(VarEnabled, false)
	if err != nil {
		return Spec{}, err
	}
	top, err := env.Topology()
	if err != nil {
		return Spec{}, err
	}
	var errs []error
	collect := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	auth, err := env.Bool(VarAuthoritative, true)
	collect(err)
	mac2ip, err := env.Bool(VarMAC2IP, true)
	collect(err)
	prefix := strings.ToLower(strings.TrimSpace(env.String(VarMACPrefix, DefaultMACPrefix)))
	if !macPrefixRe.MatchString(prefix) {
		collect(onecontext.Errorf(VarMACPrefix, env.Get(VarMACPrefix), "not a 2-byte MAC prefix such as 02:00"))
	}
	lease, err := leaseTime(env, VarLeaseTime, DefaultLeaseTime)
	collect(err)
	globalGW, err := addrList(top, env, VarGateway)
	collect(err)
	globalDNS, err := addrList(top, env, VarDNS)
	collect(err)
	sel, err := top.Interfaces(VarInterfaces, env.Get(VarInterfaces), onecontext.EmptyAll)
	collect(err)
	sel, mgmt := sel.WithoutManagement(top)
	served := dnsServedAddrs(env)
	pools, err := poolVars(env, top)
	collect(err)

	// Per-NIC values are checked even when a global one failed, so that one
	// run reports every mistake.
	spec := Spec{Enabled: enabled}
	for _, n := range mgmt {
		spec.Skipped = append(spec.Skipped, Skip{n, "management NIC"})
	}
	for _, name := range sel.NICs {
		nic, _ := top.NIC(name)
		if !nic.HasIP() {
			spec.Skipped = append(spec.Skipped, Skip{name, "no address (" + strings.ToUpper(name) + "_IP is empty)"})
			continue
		}
		srv, skip, err := nicServer(env, top, nic, nicDefaults{
			lease: lease, gw: globalGW, dns: globalDNS, auth: auth, mac2ip: mac2ip, prefix: prefix,
			dnsServed: served[name], pool: pools[name],
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if skip != "" {
			spec.Skipped = append(spec.Skipped, Skip{name, skip})
			continue
		}
		spec.Servers = append(spec.Servers, srv)
	}
	if err := errors.Join(errs...); err != nil {
		return Spec{}, err
	}
	return spec, nil
}

type nicDefaults struct {
	lease     time.Duration
	gw, dns   []netip.Addr
	auth      bool
	mac2ip    bool
	prefix    string
	dnsServed netip.Addr // one-dns's address on the NIC, if it serves it
	pool      *poolVar
}

// nicServer builds the server of one NIC; skip says why the NIC gets none.
func nicServer(env onecontext.Env, top onecontext.Topology, nic onecontext.NIC, d nicDefaults) (Server, string, error) {
	U := strings.ToUpper(nic.Name)
	prefix := VarNIC + strings.TrimPrefix(U, "ETH")
	var errs []error
	srv := Server{
		NIC: nic.Name, LeaseTime: d.lease, MAC2IP: d.mac2ip, MACPrefix: d.prefix, Authoritative: d.auth,
		LeaseFile: LeaseDir + "/leases-" + nic.Name + ".log",
	}
	ep, _ := nic.EP(0)
	srv.ServerID = ep.Addr()
	srv.Subnet = nic.IP.Masked()
	if d.pool != nil {
		srv.Subnet = d.pool.subnet
	}

	// Router: _ETHx_GATEWAY > ONEAPP_VNF_DHCP4_GATEWAY > the router's EP0 on the NIC.
	gw, err := addrList(top, env, prefix+"_GATEWAY")
	errs = append(errs, err)
	switch {
	case len(gw) > 0:
		srv.Routers = gw
	case len(d.gw) > 0:
		srv.Routers = d.gw
	default:
		srv.Routers = []netip.Addr{ep.Addr()}
	}
	// DNS: _ETHx_DNS > ONEAPP_VNF_DHCP4_DNS > the router's EP0 when one-dns
	// serves the NIC > the context's ETHx_DNS, then DNS.
	dns, err := addrList(top, env, prefix+"_DNS")
	errs = append(errs, err)
	switch {
	case len(dns) > 0:
		srv.DNS, srv.DNSFrom = dns, prefix+"_DNS"
	case len(d.dns) > 0:
		srv.DNS, srv.DNSFrom = d.dns, VarDNS
	case d.dnsServed.IsValid():
		srv.DNS, srv.DNSFrom = []netip.Addr{d.dnsServed}, "one-dns on "+nic.Name
	default:
		srv.DNS, srv.DNSFrom = ipv4Only(nic.DNS), U+"_DNS"
		if len(srv.DNS) == 0 {
			ctxDNS, err := contextDNS(env)
			errs = append(errs, err)
			srv.DNS, srv.DNSFrom = ctxDNS, "DNS"
		}
		if len(srv.DNS) == 0 {
			srv.DNSFrom = "none"
		}
	}
	// MTU: _ETHx_MTU > ETHx_MTU > the link's (0 here, read by the daemon).
	mtu, err := env.Int(prefix+"_MTU", 0, 68, 65535)
	errs = append(errs, err)
	srv.MTU = mtu
	if srv.MTU == 0 {
		srv.MTU = nic.MTU
	}
	if env.Has(prefix + "_LEASE_TIME") {
		srv.LeaseTime, err = leaseTime(env, prefix+"_LEASE_TIME", d.lease)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Server{}, "", err
	}

	// The pool: the override, or the whole subnet; never the network and
	// broadcast addresses, the router's own addresses, VIPs, or the
	// gateways and DNS servers handed out.
	if srv.Subnet.Bits() >= 31 {
		return Server{}, fmt.Sprintf("subnet %s is a /%d: no room for a pool", srv.Subnet, srv.Subnet.Bits()), nil
	}
	network, broadcast := bounds(srv.Subnet)
	srv.Start, srv.End = network.Next(), broadcast.Prev()
	if d.pool != nil && d.pool.start.IsValid() {
		srv.Start, srv.End = d.pool.start, d.pool.end
	}
	excl := map[netip.Addr]bool{network: true, broadcast: true}
	for _, n := range top.NICs {
		if n.HasIP() {
			excl[n.IP.Addr()] = true
		}
		for _, v := range n.VIPs {
			excl[v.Prefix.Addr()] = true
		}
	}
	for _, a := range append(append([]netip.Addr{}, srv.Routers...), srv.DNS...) {
		excl[a] = true
	}
	for a := range excl {
		if !a.Less(srv.Start) && !srv.End.Less(a) {
			srv.Excluded = append(srv.Excluded, a)
		}
	}
	sort.Slice(srv.Excluded, func(i, j int) bool { return srv.Excluded[i].Less(srv.Excluded[j]) })
	if size := poolSize(srv.Start, srv.End); size <= uint64(len(srv.Excluded)) {
		return Server{}, fmt.Sprintf("pool %s-%s has no address left once the router's own, VIPs, gateways and DNS servers are excluded", srv.Start, srv.End), nil
	}
	return srv, "", nil
}

// poolVar is ONEAPP_VNF_DHCP4_ETHx = <CIDR>[:<start>-<end>].
type poolVar struct {
	subnet     netip.Prefix
	start, end netip.Addr // invalid: the whole subnet
}

// poolVars parses every ONEAPP_VNF_DHCP4_ETHx pool override.
func poolVars(env onecontext.Env, top onecontext.Topology) (map[string]*poolVar, error) {
	out := map[string]*poolVar{}
	var errs []error
	for _, v := range env.Indexed(VarNIC) {
		nicName := "eth" + strings.TrimPrefix(v.Name, VarNIC)
		nic, ok := top.NIC(nicName)
		if !ok {
			errs = append(errs, onecontext.Errorf(v.Name, v.Value, "the context has no NIC %s (known: %s)", nicName, strings.Join(top.Names(), " ")))
			continue
		}
		p, err := parsePool(nic, v.Value)
		if err != nil {
			errs = append(errs, onecontext.Errorf(v.Name, v.Value, "%v", err))
			continue
		}
		out[nicName] = p
	}
	return out, errors.Join(errs...)
}

// parsePool parses <CIDR>:<start>-<end>, <CIDR> or <start>-<end> (the NIC's
// subnet). The subnet must hold the NIC's own address, and the range must lie
// inside the subnet with its start not after its end.
func parsePool(nic onecontext.NIC, s string) (*poolVar, error) {
	s = strings.TrimSpace(s)
	cidr, rng, hasRange := strings.Cut(s, ":")
	if !hasRange && strings.Contains(s, "-") {
		cidr, rng, hasRange = "", s, true
	}
	p := &poolVar{}
	if cidr == "" {
		if !nic.HasIP() {
			return nil, fmt.Errorf("want <CIDR>:<start>-<end>; %s has no address to take the subnet from", nic.Name)
		}
		p.subnet = nic.IP.Masked()
	} else {
		pfx, err := netip.ParsePrefix(strings.TrimSpace(cidr))
		if err != nil || !pfx.Addr().Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 subnet such as 10.0.0.0/24 (want <CIDR>:<start>-<end>)", cidr)
		}
		p.subnet = pfx.Masked()
		if nic.HasIP() && !p.subnet.Contains(nic.IP.Addr()) {
			return nil, fmt.Errorf("subnet %s does not hold %s's address %s", p.subnet, nic.Name, nic.IP.Addr())
		}
	}
	if !hasRange {
		return p, nil
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return nil, fmt.Errorf("range %q is not <start IP>-<end IP>", rng)
	}
	var err error
	if p.start, err = netip.ParseAddr(strings.TrimSpace(a)); err != nil || !p.start.Is4() {
		return nil, fmt.Errorf("pool start %q is not an IPv4 address", a)
	}
	if p.end, err = netip.ParseAddr(strings.TrimSpace(b)); err != nil || !p.end.Is4() {
		return nil, fmt.Errorf("pool end %q is not an IPv4 address", b)
	}
	if p.end.Less(p.start) {
		return nil, fmt.Errorf("pool start %s is after its end %s", p.start, p.end)
	}
	for _, x := range []netip.Addr{p.start, p.end} {
		if !p.subnet.Contains(x) {
			return nil, fmt.Errorf("pool %s-%s is outside its subnet %s", p.start, p.end, p.subnet)
		}
	}
	return p, nil
}

// addrList parses a list of IPv4 addresses or placeholders (<ETH1_EP0>).
func addrList(top onecontext.Topology, env onecontext.Env, name string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, item := range onecontext.SplitList(env.Get(name)) {
		a, err := top.ResolveAddr(item)
		if err != nil {
			return nil, onecontext.Errorf(name, env.Get(name), "%v", err)
		}
		if !containsAddr(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// contextDNS is the context's own DNS variable (IPv6 servers dropped: DHCPv4
// cannot hand them out).
func contextDNS(env onecontext.Env) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, item := range onecontext.SplitList(env.Get("DNS")) {
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, onecontext.Errorf("DNS", env.Get("DNS"), "%q is not an IP address", item)
		}
		if a.Is4() && !containsAddr(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

func ipv4Only(as []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range as {
		if a.Is4() && !containsAddr(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// leaseTime parses a lease time in whole seconds.
func leaseTime(env onecontext.Env, name string, def time.Duration) (time.Duration, error) {
	n, err := env.Int(name, int(def/time.Second), int(MinLeaseTime/time.Second), int(MaxLeaseTime/time.Second))
	if err != nil {
		return 0, err
	}
	return time.Duration(n) * time.Second, nil
}

// dnsServedAddrs maps each NIC one-dns answers on (port 53) to the address
// to hand out as nameserver there: its EP0 when one-dns listens on it. An
// invalid DNS context means one-dns serves nothing (it reports that itself).
func dnsServedAddrs(env onecontext.Env) map[string]netip.Addr {
	m, err := dns.ServedAddrs(env)
	if err != nil {
		return nil
	}
	out := map[string]netip.Addr{}
	for nic, as := range m {
		if len(as) > 0 {
			out[nic] = as[0]
		}
	}
	return out
}

// bounds returns the network and broadcast addresses of p.
func bounds(p netip.Prefix) (netip.Addr, netip.Addr) {
	p = p.Masked()
	b := p.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= ^uint32(0) >> p.Bits()
	if p.Bits() == 0 {
		v = ^uint32(0)
	}
	return p.Addr(), netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func poolSize(start, end netip.Addr) uint64 {
	return uint64(u32(end)) - uint64(u32(start)) + 1
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// Netmask is the dotted netmask of the server's subnet.
func (s Server) Netmask() netip.Addr {
	v := ^uint32(0) << (32 - s.Subnet.Bits())
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
