// Package dns is the DNS module: unbound as a caching recursor for the
// private networks attached to the router. It listens on the addresses of
// the ONEAPP_VNF_DNS_INTERFACES NICs (never a management NIC), answers only
// clients of ONEAPP_VNF_DNS_ALLOWED_NETWORKS (by default the subnets of those
// NICs, so the router is never an open resolver), resolves from the root
// servers or through forwarders (ONEAPP_VNF_DNS_NAMESERVERS, else the
// context's own nameservers), and serves the local zone ipX/vipX/epX.ethY.vr
// with the router's addresses.
package dns

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"

	"github.com/hypercx/vrouter/pkg/onecontext"
)

// Context variables.
const (
	VarEnabled         = "ONEAPP_VNF_DNS_ENABLED"
	VarInterfaces      = "ONEAPP_VNF_DNS_INTERFACES"
	VarMaxCacheTTL     = "ONEAPP_VNF_DNS_MAX_CACHE_TTL"
	VarUseRootServers  = "ONEAPP_VNF_DNS_USE_ROOTSERVERS"
	VarNameservers     = "ONEAPP_VNF_DNS_NAMESERVERS"
	VarUpstreamTimeout = "ONEAPP_VNF_DNS_UPSTREAM_TIMEOUT"
	VarAllowedNetworks = "ONEAPP_VNF_DNS_ALLOWED_NETWORKS"
	VarTCPDisabled     = "ONEAPP_VNF_DNS_TCP_DISABLED"
	VarUDPDisabled     = "ONEAPP_VNF_DNS_UDP_DISABLED"
	VarClusterDomain   = "ONEAPP_VNF_DNS_CLUSTER_DOMAIN"
	// VarContextDNS is one-context's global nameserver list; ETHx_DNS are
	// the per-NIC ones (onecontext.NIC.DNS).
	VarContextDNS = "DNS"
)

// Defaults of the user guide.
const (
	DefaultUpstreamTimeout = 1128 // milliseconds
	DefaultMaxCacheTTL     = 3600 // seconds
	DefaultDomain          = "vr"
	// Port is where clients (and DHCP's DNS option) find the resolver.
	Port = 53
)

// Listener is one address unbound listens on.
type Listener struct {
	NIC  string // "" for the loopback listener
	Addr netip.AddrPort
}

// Record is one name of the local zone.
type Record struct {
	Name string // fully qualified, without the trailing dot: "ep0.eth1.vr"
	Addr netip.Addr
}

// Upstream says where names outside the local zone are resolved.
type Upstream string

const (
	// UpstreamRoots: recursion from the root servers.
	UpstreamRoots Upstream = "root servers"
	// UpstreamForwarders: ONEAPP_VNF_DNS_NAMESERVERS.
	UpstreamForwarders Upstream = VarNameservers
	// UpstreamContext: the context's DNS and ETHx_DNS nameservers.
	UpstreamContext Upstream = "context nameservers (DNS, ETHx_DNS)"
	// UpstreamNone: root servers off and no nameserver anywhere; only the
	// local zone answers, every other name is SERVFAIL.
	UpstreamNone Upstream = "none"
)

// Spec is the parsed context.
type Spec struct {
	Enabled bool
	// Listeners: the loopback first, then per NIC in index order its own
	// address and its VIPs (or the addresses the interface list names).
	Listeners []Listener
	// Served are the NICs with at least one listener, index order.
	Served []string
	// Allowed are the client networks (besides the loopback).
	Allowed []netip.Prefix
	// AllowedDefault: Allowed was derived from the listened NICs.
	AllowedDefault bool
	Upstream       Upstream
	// Forwarders, in order.
	Forwarders []netip.AddrPort
	// ForwardFirst: forwarders first, root servers when they fail (explicit
	// nameservers with root servers left on).
	ForwardFirst bool
	// RootHints is the root hints file to use ("" = unbound's built-in
	// hints); host-dependent, set by the caller (see DetectRootHints).
	RootHints         string
	UpstreamTimeoutMs int
	MaxCacheTTL       int
	UDP, TCP          bool
	Domain            string
	Records           []Record
	// Skipped are management NICs the interface list would have included;
	// Unaddressed are listed NICs with no address to listen on.
	Skipped, Unaddressed []string
	// IgnoredDNS are context nameservers left out of the forwarders (the
	// router's own addresses, loopback, IPv6).
	IgnoredDNS []netip.Addr
}

// FromContext parses the DNS variables; every invalid value is reported, each
// naming its variable. It is pure: RootHints is left empty.
func FromContext(env onecontext.Env) (Spec, error) {
	var errs []error
	collect := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	enabled, err := env.Bool(VarEnabled, false)
	collect(err)
	top, err := env.Topology()
	if err != nil {
		return Spec{}, errors.Join(append(errs, err)...)
	}
	spec := Spec{Enabled: enabled}
	ls, served, skipped, unaddressed, err := listeners(env, top)
	collect(err)
	spec.Listeners, spec.Served, spec.Skipped, spec.Unaddressed = ls, served, skipped, unaddressed

	spec.UpstreamTimeoutMs, err = env.Int(VarUpstreamTimeout, DefaultUpstreamTimeout, 1, math.MaxInt32)
	collect(err)
	spec.MaxCacheTTL, err = env.Int(VarMaxCacheTTL, DefaultMaxCacheTTL, 1, math.MaxInt32)
	collect(err)
	tcpOff, err := env.Bool(VarTCPDisabled, false)
	collect(err)
	udpOff, err := env.Bool(VarUDPDisabled, false)
	collect(err)
	spec.TCP, spec.UDP = !tcpOff, !udpOff
	if tcpOff && udpOff {
		collect(onecontext.Errorf(VarUDPDisabled, env.Get(VarUDPDisabled), "%s is also YES: with both disabled nothing could be served", VarTCPDisabled))
	}
	spec.Domain, err = domain(env)
	collect(err)
	spec.Allowed, spec.AllowedDefault, err = allowed(env, top, spec.Served)
	collect(err)
	collect(upstream(env, top, &spec))
	spec.Records = records(top, spec.Domain)
	if len(errs) > 0 {
		return Spec{}, errors.Join(errs...)
	}
	return spec, nil
}

// ServedNICs lists, in index order, the NICs on which one-dns answers on
// port 53 (none when DNS is disabled). It reads only ONEAPP_VNF_DNS_ENABLED,
// ONEAPP_VNF_DNS_INTERFACES and the NICs, so another service (DHCP's default
// DNS option) is not failed by an unrelated DNS variable.
func ServedNICs(env onecontext.Env) ([]string, error) {
	m, err := ServedAddrs(env)
	if err != nil {
		return nil, err
	}
	top, _ := env.Topology()
	var out []string
	for _, n := range top.NICs {
		if len(m[n.Name]) > 0 {
			out = append(out, n.Name)
		}
	}
	return out, nil
}

// ServedAddrs maps each served NIC to the addresses one-dns answers on at
// port 53 on it, the NIC's endpoint EP0 (VIP0, else its own IP) first when
// it is one of them: the address to hand to clients as their nameserver.
func ServedAddrs(env onecontext.Env) (map[string][]netip.Addr, error) {
	enabled, err := env.Bool(VarEnabled, false)
	if err != nil || !enabled {
		return map[string][]netip.Addr{}, err
	}
	top, err := env.Topology()
	if err != nil {
		return nil, err
	}
	ls, _, _, _, err := listeners(env, top)
	if err != nil {
		return nil, err
	}
	out := map[string][]netip.Addr{}
	for _, l := range ls {
		if l.NIC == "" || l.Addr.Port() != Port {
			continue
		}
		out[l.NIC] = append(out[l.NIC], l.Addr.Addr())
	}
	for name, addrs := range out {
		n, _ := top.NIC(name)
		ep, ok := n.EP(0)
		if !ok {
			continue
		}
		for i, a := range addrs {
			if a == ep.Addr() && i > 0 {
				copy(addrs[1:i+1], addrs[:i])
				addrs[0] = a
				break
			}
		}
	}
	return out, nil
}

// listeners turns ONEAPP_VNF_DNS_INTERFACES into addresses: an item naming
// an address listens there; an item naming only a NIC listens on the NIC's
// own address and every VIP (a VIP held by the other router is bound all
// the same, with ip-freebind). Management NICs are dropped.
func listeners(env onecontext.Env, top onecontext.Topology) (ls []Listener, served, skipped, unaddressed []string, err error) {
	sel, err := top.Interfaces(VarInterfaces, env.Get(VarInterfaces), onecontext.EmptyAll)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	sel, skipped = sel.WithoutManagement(top)
	ls = []Listener{{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), Port)}}
	seen := map[netip.AddrPort]bool{ls[0].Addr: true}
	for _, name := range sel.NICs {
		nic, _ := top.NIC(name)
		before := len(ls)
		for _, ref := range sel.Refs[name] {
			port := ref.Port
			if port == 0 {
				port = Port
			}
			var addrs []netip.Addr
			switch {
			case ref.Addr.IsValid() && !ref.Addr.Is4():
				return nil, nil, nil, nil, onecontext.Errorf(VarInterfaces, env.Get(VarInterfaces), "%s: the DNS service listens on IPv4 addresses only", ref.Addr)
			case ref.Addr.IsValid():
				addrs = []netip.Addr{ref.Addr}
			default:
				if nic.HasIP() {
					addrs = append(addrs, nic.IP.Addr())
				}
				for _, v := range nic.VIPs {
					addrs = append(addrs, v.Prefix.Addr())
				}
			}
			for _, a := range addrs {
				ap := netip.AddrPortFrom(a, port)
				if !seen[ap] {
					seen[ap] = true
					ls = append(ls, Listener{NIC: name, Addr: ap})
				}
			}
		}
		if len(ls) > before {
			served = append(served, name)
		} else {
			unaddressed = append(unaddressed, name)
		}
	}
	return ls, served, skipped, unaddressed, nil
}

// allowed parses ONEAPP_VNF_DNS_ALLOWED_NETWORKS, or derives the networks of
// the served NICs (their own and their VIPs' subnets).
func allowed(env onecontext.Env, top onecontext.Topology, served []string) ([]netip.Prefix, bool, error) {
	raw := env.Get(VarAllowedNetworks)
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	add := func(p netip.Prefix) {
		if p = p.Masked(); !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	items := onecontext.SplitList(raw)
	if len(items) == 0 {
		for _, name := range served {
			n, _ := top.NIC(name)
			if n.HasIP() {
				add(n.IP)
			}
			for _, v := range n.VIPs {
				add(v.Prefix)
			}
		}
		sortPrefixes(out)
		return out, true, nil
	}
	for _, it := range items {
		if !strings.Contains(it, "/") {
			return nil, false, onecontext.Errorf(VarAllowedNetworks, raw, "%q is not a network in CIDR notation (address/prefix, e.g. 10.0.0.0/24)", it)
		}
		p, err := netip.ParsePrefix(it)
		if err != nil {
			return nil, false, onecontext.Errorf(VarAllowedNetworks, raw, "%q is not a network in CIDR notation (address/prefix, e.g. 10.0.0.0/24)", it)
		}
		add(p)
	}
	return out, false, nil
}

func sortPrefixes(ps []netip.Prefix) {
	sort.Slice(ps, func(i, j int) bool {
		if c := ps[i].Addr().Compare(ps[j].Addr()); c != 0 {
			return c < 0
		}
		return ps[i].Bits() < ps[j].Bits()
	})
}

// domain validates ONEAPP_VNF_DNS_CLUSTER_DOMAIN (empty = unset = "vr"): a
// DNS name of letters, digits and hyphens, so nothing but a name reaches
// unbound.conf.
func domain(env onecontext.Env) (string, error) {
	raw := env.Get(VarClusterDomain)
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(raw), "."))
	if d == "" {
		return DefaultDomain, nil
	}
	bad := func(why string) (string, error) {
		return "", onecontext.Errorf(VarClusterDomain, raw, "not a domain name: %s", why)
	}
	if len(d) > 200 {
		return bad("longer than 200 characters")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return bad("labels must be 1-63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return bad("a label cannot start or end with a hyphen")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return bad(fmt.Sprintf("character %q (use letters, digits, hyphens and dots)", c))
			}
		}
	}
	return d, nil
}

// upstream decides where other names are resolved. Explicit nameservers are
// always used: with root servers on (the default) they are tried first and
// the root servers are the fallback; with root servers off they are the only
// upstream. With root servers off and no nameservers, the context's own
// nameservers are the forwarders (DNS, then ETHx_DNS by NIC), the router's
// own addresses left out so it never forwards to itself.
func upstream(env onecontext.Env, top onecontext.Topology, spec *Spec) error {
	roots, err := env.Bool(VarUseRootServers, true)
	if err != nil {
		return err
	}
	raw := env.Get(VarNameservers)
	seen := map[netip.AddrPort]bool{}
	for _, it := range onecontext.SplitList(raw) {
		ap, err := parseNameserver(it)
		if err != nil {
			return onecontext.Errorf(VarNameservers, raw, "%v", err)
		}
		if !seen[ap] {
			seen[ap] = true
			spec.Forwarders = append(spec.Forwarders, ap)
		}
	}
	switch {
	case len(spec.Forwarders) > 0:
		spec.Upstream, spec.ForwardFirst = UpstreamForwarders, roots
		return nil
	case roots:
		spec.Upstream = UpstreamRoots
		return nil
	}
	var candidates []netip.Addr
	for _, it := range onecontext.SplitList(env.Get(VarContextDNS)) {
		a, err := netip.ParseAddr(it)
		if err != nil {
			return onecontext.Errorf(VarContextDNS, env.Get(VarContextDNS), "%q is not an IP address", it)
		}
		candidates = append(candidates, a)
	}
	for _, n := range top.NICs {
		candidates = append(candidates, n.DNS...)
	}
	for _, a := range candidates {
		ap := netip.AddrPortFrom(a.Unmap(), Port)
		switch {
		case seen[ap]:
		case !ap.Addr().Is4() || ap.Addr().IsLoopback() || ap.Addr().IsUnspecified() || owned(top, ap.Addr()):
			spec.IgnoredDNS = append(spec.IgnoredDNS, a)
		default:
			seen[ap] = true
			spec.Forwarders = append(spec.Forwarders, ap)
		}
	}
	spec.Upstream = UpstreamContext
	if len(spec.Forwarders) == 0 {
		spec.Upstream = UpstreamNone
	}
	return nil
}

// parseNameserver parses IP[@PORT] (IPv4: the router resolves over IPv4).
func parseNameserver(s string) (netip.AddrPort, error) {
	host, port, hasPort := strings.Cut(s, "@")
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is4() {
		return netip.AddrPort{}, fmt.Errorf("%q is not IP[@PORT] with an IPv4 address", s)
	}
	p := uint16(Port)
	if hasPort {
		if p, err = onecontext.ParsePort(port); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%q is not IP[@PORT]: %v", s, err)
		}
	}
	return netip.AddrPortFrom(a, p), nil
}

// owned reports whether a is an address of the router (any NIC's IP or VIP).
func owned(top onecontext.Topology, a netip.Addr) bool {
	for _, n := range top.NICs {
		if n.Owns(a) {
			return true
		}
	}
	return false
}

// records lists the local-zone names of every NIC (management included, as
// in the original): ip0, vipN and epN, by NIC index then kind then index.
func records(top onecontext.Topology, domain string) []Record {
	var out []Record
	for _, n := range top.NICs {
		if n.HasIP() {
			out = append(out, Record{Name: fmt.Sprintf("ip0.%s.%s", n.Name, domain), Addr: n.IP.Addr()})
		}
		for _, v := range n.VIPs {
			out = append(out, Record{Name: fmt.Sprintf("vip%d.%s.%s", v.Index, n.Name, domain), Addr: v.Prefix.Addr()})
		}
		eps := []int{}
		if _, ok := n.EP(0); ok {
			eps = append(eps, 0)
		}
		for _, v := range n.VIPs {
			if v.Index != 0 {
				eps = append(eps, v.Index)
			}
		}
		for _, i := range eps {
			ep, _ := n.EP(i)
			out = append(out, Record{Name: fmt.Sprintf("ep%d.%s.%s", i, n.Name, domain), Addr: ep.Addr()})
		}
	}
	return out
}
