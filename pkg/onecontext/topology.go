package onecontext

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// NIC is one network interface of the router as the context describes it.
type NIC struct {
	Name  string // "eth0"
	Index int    // 0
	// IP is ETHx_IP with its inferred prefix length; invalid when the NIC has
	// no address (floating-only NICs).
	IP netip.Prefix
	// VIPs are the floating addresses (ETHx_VROUTER_IP, ONEAPP_VROUTER_ETHx_VIPy)
	// sorted by index.
	VIPs       []VIP
	Management bool       // ETHx_VROUTER_MANAGEMENT=YES: services never touch it
	Gateway    netip.Addr // ETHx_GATEWAY
	DNS        []netip.Addr
	MTU        int
	MAC        string
}

// VIP is a floating address of a NIC.
type VIP struct {
	Index  int
	Prefix netip.Prefix
}

// HasIP reports whether the NIC has its own address.
func (n NIC) HasIP() bool { return n.IP.IsValid() }

// Subnet is the network of the NIC's address (or of its first VIP when it has
// no address of its own); invalid if it has neither.
func (n NIC) Subnet() netip.Prefix {
	if n.IP.IsValid() {
		return n.IP.Masked()
	}
	if len(n.VIPs) > 0 {
		return n.VIPs[0].Prefix.Masked()
	}
	return netip.Prefix{}
}

// VIP returns the VIP with index i.
func (n NIC) VIP(i int) (netip.Prefix, bool) {
	for _, v := range n.VIPs {
		if v.Index == i {
			return v.Prefix, true
		}
	}
	return netip.Prefix{}, false
}

// EP returns endpoint i: VIPi when set; for i=0 the NIC's own IP otherwise.
func (n NIC) EP(i int) (netip.Prefix, bool) {
	if v, ok := n.VIP(i); ok {
		return v, true
	}
	if i == 0 && n.IP.IsValid() {
		return n.IP, true
	}
	return netip.Prefix{}, false
}

// Owns reports whether a is the NIC's own address or one of its VIPs.
func (n NIC) Owns(a netip.Addr) bool {
	if n.IP.IsValid() && n.IP.Addr() == a {
		return true
	}
	for _, v := range n.VIPs {
		if v.Prefix.Addr() == a {
			return true
		}
	}
	return false
}

// Topology is every NIC of the context, sorted by index.
type Topology struct {
	NICs []NIC
	ph   map[string]netip.Prefix // Placeholders, computed once by Env.Topology
}

// NIC returns the NIC called name.
func (t Topology) NIC(name string) (NIC, bool) {
	for _, n := range t.NICs {
		if n.Name == name {
			return n, true
		}
	}
	return NIC{}, false
}

// Names returns the names of every NIC in index order.
func (t Topology) Names() []string {
	out := make([]string, len(t.NICs))
	for i, n := range t.NICs {
		out[i] = n.Name
	}
	return out
}

// Management returns the names of the management NICs.
func (t Topology) Management() []string {
	var out []string
	for _, n := range t.NICs {
		if n.Management {
			out = append(out, n.Name)
		}
	}
	return out
}

// IsManagement reports whether name is a management NIC.
func (t Topology) IsManagement(name string) bool {
	n, ok := t.NIC(name)
	return ok && n.Management
}

// NICOf returns the NICs whose subnet contains a, in index order.
func (t Topology) NICOf(a netip.Addr) []NIC {
	var out []NIC
	for _, n := range t.NICs {
		if s := n.Subnet(); s.IsValid() && s.Contains(a) {
			out = append(out, n)
		}
	}
	return out
}

var (
	nicVar      = regexp.MustCompile(`^ETH([0-9]+)_`)
	onevipVar   = regexp.MustCompile(`^ONEAPP_VROUTER_ETH([0-9]+)_VIP([0-9]+)$`)
	nicNameRe   = regexp.MustCompile(`^eth([0-9]+)$`)
	placeholder = regexp.MustCompile(`^<ETH([0-9]+)_(IP|VIP|EP)([0-9]+)>$`)
)

// NICNames lists the NICs named by ETHx_* and ONEAPP_VROUTER_ETHx_VIPy
// variables (empty ones included), in index order. It never fails, so
// teardown can use it on a context that does not parse.
func (e Env) NICNames() []string {
	seen := map[string]int{}
	for k := range e.vars {
		digits, ok := nicDigits(k)
		if !ok {
			continue
		}
		if n, ok := index(digits); ok {
			seen["eth"+digits] = n
		}
	}
	names := make([]string, 0, len(seen))
	for k := range seen {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if seen[names[i]] != seen[names[j]] {
			return seen[names[i]] < seen[names[j]]
		}
		return names[i] < names[j]
	})
	return names
}

// nicDigits returns the NIC index digits of ETHx_* and
// ONEAPP_VROUTER_ETHx_VIPy variable names (nicVar and onevipVar, without the
// regexp cost on contexts with thousands of variables).
func nicDigits(k string) (string, bool) {
	rest, vip := strings.CutPrefix(k, "ONEAPP_VROUTER_ETH")
	if !vip {
		var ok bool
		if rest, ok = strings.CutPrefix(k, "ETH"); !ok {
			return "", false
		}
	}
	d := 0
	for d < len(rest) && rest[d] >= '0' && rest[d] <= '9' {
		d++
	}
	if d == 0 || d >= len(rest) || rest[d] != '_' {
		return "", false
	}
	if vip {
		idx, ok := strings.CutPrefix(rest[d+1:], "VIP")
		if _, isNum := index(idx); !ok || !isNum {
			return "", false
		}
	}
	return rest[:d], true
}

// ManagementNICs lists the NICs with ETHx_VROUTER_MANAGEMENT set to true,
// leniently (never fails).
func (e Env) ManagementNICs() []string {
	var out []string
	for _, n := range e.NICNames() {
		if e.LenientBool(upper(n)+"_VROUTER_MANAGEMENT", false) {
			out = append(out, n)
		}
	}
	return out
}

// upper turns "eth3" into "ETH3".
func upper(nic string) string { return strings.ToUpper(nic) }

// Topology parses every NIC of the context. Invalid addresses, masks, VIPs or
// flags are errors naming the variable; all of them are reported together.
func (e Env) Topology() (Topology, error) {
	var errs []error
	var t Topology
	for _, name := range e.NICNames() {
		n, err := e.nic(name)
		if err != nil {
			errs = append(errs, err)
		}
		t.NICs = append(t.NICs, n)
	}
	t.ph = t.Placeholders()
	return t, errors.Join(errs...)
}

func (e Env) nic(name string) (NIC, error) {
	var errs []error
	idx, _ := strconv.Atoi(strings.TrimPrefix(name, "eth"))
	n := NIC{Name: name, Index: idx}
	U := upper(name)
	if v := strings.TrimSpace(e.Get(U + "_IP")); v != "" {
		p, err := e.inferPrefix(U, v)
		if err != nil {
			errs = append(errs, err)
		}
		n.IP = p
	}
	// ETHx_VROUTER_IP is VIP0 unless ONEAPP_VROUTER_ETHx_VIP0 overrides it.
	vips := map[int]string{}
	vipVar := map[int]string{}
	if v := strings.TrimSpace(e.Get(U + "_VROUTER_IP")); v != "" {
		vips[0], vipVar[0] = v, U+"_VROUTER_IP"
	}
	for _, iv := range e.Indexed("ONEAPP_VROUTER_" + U + "_VIP") {
		vips[iv.Index], vipVar[iv.Index] = strings.TrimSpace(iv.Value), iv.Name
	}
	for i, v := range vips {
		p, err := e.inferPrefixVar(U, vipVar[i], v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n.VIPs = append(n.VIPs, VIP{Index: i, Prefix: p})
	}
	sort.Slice(n.VIPs, func(i, j int) bool { return n.VIPs[i].Index < n.VIPs[j].Index })
	mgmt, err := e.Bool(U+"_VROUTER_MANAGEMENT", false)
	if err != nil {
		errs = append(errs, err)
	}
	n.Management = mgmt
	if v := strings.TrimSpace(e.Get(U + "_GATEWAY")); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() {
			errs = append(errs, Errorf(U+"_GATEWAY", v, "not an IPv4 address"))
		}
		n.Gateway = a
	}
	for _, f := range splitList(e.Get(U + "_DNS")) {
		a, err := netip.ParseAddr(f)
		if err != nil {
			errs = append(errs, Errorf(U+"_DNS", e.Get(U+"_DNS"), "%q is not an IP address", f))
			continue
		}
		n.DNS = append(n.DNS, a)
	}
	if v := strings.TrimSpace(e.Get(U + "_MTU")); v != "" {
		m, err := strconv.Atoi(v)
		if err != nil || m < 68 || m > 65535 {
			errs = append(errs, Errorf(U+"_MTU", v, "not an MTU (68-65535)"))
		}
		n.MTU = m
	}
	n.MAC = strings.ToLower(strings.TrimSpace(e.Get(U + "_MAC")))
	return n, errors.Join(errs...)
}

func (e Env) inferPrefix(U, v string) (netip.Prefix, error) {
	return e.inferPrefixVar(U, U+"_IP", v)
}

// inferPrefixVar gives the address v of NIC U its prefix length: an explicit
// /len, else ETHx_MASK, else ETHx_NETWORK, else the original's classful guess
// (10/8 → 8, 172.16/12 → 16, 192.168/16 → 24, anything else 24).
func (e Env) inferPrefixVar(U, varName, v string) (netip.Prefix, error) {
	addrPart, lenPart, hasLen := strings.Cut(v, "/")
	a, err := netip.ParseAddr(addrPart)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, Errorf(varName, v, "not an IPv4 address")
	}
	if hasLen {
		l, err := strconv.Atoi(lenPart)
		if err != nil || l < 0 || l > 32 {
			return netip.Prefix{}, Errorf(varName, v, "invalid prefix length %q", lenPart)
		}
		if l == 0 {
			l = 32
		}
		return netip.PrefixFrom(a, l), nil
	}
	if m := strings.TrimSpace(e.Get(U + "_MASK")); m != "" {
		l, err := maskLen(m)
		if err != nil {
			return netip.PrefixFrom(a, 32), Errorf(U+"_MASK", m, "%v", err)
		}
		return netip.PrefixFrom(a, l), nil
	}
	if nw := strings.TrimSpace(e.Get(U + "_NETWORK")); nw != "" {
		na, err := netip.ParseAddr(nw)
		if err != nil || !na.Is4() {
			return netip.PrefixFrom(a, 32), Errorf(U+"_NETWORK", nw, "not an IPv4 network address")
		}
		return netip.PrefixFrom(a, networkLen(na, a)), nil
	}
	return netip.PrefixFrom(a, classful(a)), nil
}

// maskLen turns a dotted netmask into a prefix length.
func maskLen(m string) (int, error) {
	a, err := netip.ParseAddr(m)
	if err != nil || !a.Is4() {
		return 0, errors.New("not a dotted IPv4 netmask")
	}
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	l := 0
	for l < 32 && v&(1<<(31-l)) != 0 {
		l++
	}
	if l < 32 && v<<l != 0 {
		return 0, errors.New("netmask is not contiguous")
	}
	if l == 0 {
		l = 32
	}
	return l, nil
}

// networkLen infers the prefix from ETHx_NETWORK the way the original does
// (32 − 8 × trailing zero octets, 0 meaning 32). Where that leaves the NIC's
// own address outside the network (10.2.0.128 with 10.2.0.130 gives /32
// there), the shortest prefix of which nw is the network address is used
// instead (/25 in that example).
func networkLen(nw, a netip.Addr) int {
	b := nw.As4()
	l := 32
	for i := 3; i >= 0 && b[i] == 0; i-- {
		l -= 8
	}
	if l == 0 {
		l = 32
	}
	if netip.PrefixFrom(nw, l).Masked().Contains(a) {
		return l
	}
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	bits := 32
	for bits > 0 && v&(1<<(32-bits)) == 0 {
		bits--
	}
	if bits > 0 && netip.PrefixFrom(nw, bits).Contains(a) {
		return bits
	}
	return l
}

func classful(a netip.Addr) int {
	b := a.As4()
	switch {
	case b[0] == 10:
		return 8
	case b[0] == 172 && b[1] >= 16 && b[1] <= 31:
		return 16
	case b[0] == 192 && b[1] == 168:
		return 24
	}
	return 24
}

// Placeholders maps ETHx_IP0, ETHx_VIPy and ETHx_EPy to their addresses with
// prefix, for every NIC (management included).
func (t Topology) Placeholders() map[string]netip.Prefix {
	if t.ph != nil {
		return t.ph
	}
	m := map[string]netip.Prefix{}
	for _, n := range t.NICs {
		U := upper(n.Name)
		if n.IP.IsValid() {
			m[U+"_IP0"] = n.IP
			m[U+"_EP0"] = n.IP
		}
		for _, v := range n.VIPs {
			m[fmt.Sprintf("%s_VIP%d", U, v.Index)] = v.Prefix
			m[fmt.Sprintf("%s_EP%d", U, v.Index)] = v.Prefix
		}
	}
	return m
}

// IsPlaceholder reports whether s is a whole <ETHx_IPy>, <ETHx_VIPy> or
// <ETHx_EPy> placeholder.
func IsPlaceholder(s string) bool { return placeholder.MatchString(strings.TrimSpace(s)) }

// ResolveAddr resolves s, a placeholder or a literal IPv4 address, to an
// address. A placeholder that resolves to nothing is an error.
func (t Topology) ResolveAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<ETH") && strings.HasSuffix(s, ">") && placeholder.MatchString(s) {
		key := s[1 : len(s)-1]
		p, ok := t.Placeholders()[key]
		if !ok {
			return netip.Addr{}, fmt.Errorf("placeholder %s resolves to nothing (no such address in the context)", s)
		}
		return p.Addr(), nil
	}
	if strings.HasPrefix(s, "<") {
		return netip.Addr{}, fmt.Errorf("%q is not a known placeholder (use <ETHx_IPy>, <ETHx_VIPy> or <ETHx_EPy>)", s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return a, nil
}

// splitList splits a list value on blanks, commas and semicolons.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == ',' || r == ';' || r == '\t' || r == '\n' || r == '\r'
	})
}

// SplitList splits a list value on blanks, commas and semicolons, dropping
// empty items.
func SplitList(s string) []string { return splitList(s) }
