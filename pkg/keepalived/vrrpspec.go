package keepalived

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hypercx/vrouter/pkg/onecontext"
)

// Context variables (user guide, "Keepalived Module Configuration
// Attributes"), and the options the original lacks.
const (
	VarInterfaces   = "ONEAPP_VNF_KEEPALIVED_INTERFACES"
	VarPassword     = "ONEAPP_VNF_KEEPALIVED_PASSWORD"
	VarInterval     = "ONEAPP_VNF_KEEPALIVED_INTERVAL"
	VarPriority     = "ONEAPP_VNF_KEEPALIVED_PRIORITY"
	VarVRID         = "ONEAPP_VNF_KEEPALIVED_VRID"
	VarNoPreempt    = "ONEAPP_VNF_KEEPALIVED_NOPREEMPT"
	VarPreemptDelay = "ONEAPP_VNF_KEEPALIVED_PREEMPT_DELAY"
	// Set by OpenNebula on every virtual router instance.
	VarLegacyPassword = "VROUTER_KEEPALIVED_PASSWORD"
	VarLegacyVRID     = "VROUTER_KEEPALIVED_ID"
	// VRID fallbacks.
	VarServiceID = "SERVICE_ID"
	VarVMID      = "VMID"
	// Per-NIC suffixes of ONEAPP_VNF_KEEPALIVED_ETHx_<suffix>.
	SuffixPassword     = "PASSWORD"
	SuffixInterval     = "INTERVAL"
	SuffixPriority     = "PRIORITY"
	SuffixVRID         = "VRID"
	SuffixSkip         = "SKIP"
	SuffixUnicastPeers = "UNICAST_PEERS"
)

// Defaults and limits.
const (
	DefaultPriority = 100
	DefaultInterval = time.Second
	// MaxPassword is what PASS authentication carries; keepalived would
	// silently cut a longer one.
	MaxPassword = 8
	// VRRPv3 counts intervals in centiseconds up to 40.95 s; VRRPv2 in whole
	// seconds up to 255.
	minInterval     = 10 * time.Millisecond
	maxInterval     = 255 * time.Second
	maxIntervalV3   = 4095 * time.Millisecond
	maxPreemptDelay = 1000 * time.Second
)

// NICVar is the per-NIC variable ONEAPP_VNF_KEEPALIVED_ETHx_<suffix>.
func NICVar(nic, suffix string) string {
	return "ONEAPP_VNF_KEEPALIVED_" + strings.ToUpper(nic) + "_" + suffix
}

// nicModel is one managed NIC before grouping by VRID.
type nicModel struct {
	onecontext.NIC
	vrid, priority int
	interval       time.Duration
	password       string
	skip           bool
	peers          []netip.Addr
	peersVar       string
}

// FromContext parses the VRRP part of the context. Every invalid value is
// reported, each naming its variable; nothing is half-parsed.
func FromContext(env onecontext.Env) (Config, error) {
	top, err := env.Topology()
	if err != nil {
		return Config{}, err
	}
	var errs []error
	var cfg Config
	sel, err := top.Interfaces(VarInterfaces, env.Get(VarInterfaces), onecontext.EmptyAll)
	if err != nil {
		return Config{}, err
	}
	sel, _ = sel.WithoutManagement(top)

	vrid, vridWarn, err := defaultVRID(env)
	errs = append(errs, err)
	if vridWarn != "" {
		cfg.Warnings = append(cfg.Warnings, vridWarn)
	}
	priority, err := env.Int(VarPriority, DefaultPriority, 1, 254)
	errs = append(errs, err)
	interval, err := parseInterval(env, VarInterval, DefaultInterval)
	errs = append(errs, err)
	pwVar, password := VarPassword, env.Get(VarPassword)
	if password == "" {
		pwVar, password = VarLegacyPassword, env.Get(VarLegacyPassword)
	}
	errs = append(errs, checkPassword(pwVar, password))
	noPreempt, err := env.Bool(VarNoPreempt, false)
	errs = append(errs, err)
	preemptDelay, err := env.Seconds(VarPreemptDelay, 0, 0, maxPreemptDelay)
	if err != nil {
		errs = append(errs, onecontext.Errorf(VarPreemptDelay, env.Get(VarPreemptDelay), "not a number of seconds (0-1000)"))
	}

	anyVIP := false
	var nics []nicModel
	for _, name := range sel.NICs {
		n, _ := top.NIC(name)
		m := nicModel{NIC: n, vrid: vrid, priority: priority, interval: interval, password: password}
		var err error
		if m.vrid, err = env.Int(NICVar(name, SuffixVRID), vrid, 1, 255); err != nil {
			errs = append(errs, err)
		}
		if m.priority, err = env.Int(NICVar(name, SuffixPriority), priority, 1, 254); err != nil {
			errs = append(errs, err)
		}
		if m.interval, err = parseInterval(env, NICVar(name, SuffixInterval), interval); err != nil {
			errs = append(errs, err)
		}
		if v := NICVar(name, SuffixPassword); env.Has(v) {
			m.password = env.Get(v)
			errs = append(errs, checkPassword(v, m.password))
		}
		if m.skip, err = env.Bool(NICVar(name, SuffixSkip), false); err != nil {
			errs = append(errs, err)
		}
		m.peersVar = NICVar(name, SuffixUnicastPeers)
		if m.peers, err = ParsePeers(m.peersVar, env.Get(m.peersVar), n.IP.Addr()); err != nil {
			errs = append(errs, err)
		}
		anyVIP = anyVIP || len(n.VIPs) > 0
		nics = append(nics, m)
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	if !anyVIP {
		return cfg, nil
	}
	if noPreempt && preemptDelay > 0 {
		cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s is ignored with %s=YES", VarPreemptDelay, VarNoPreempt))
	}
	cfg.group(nics, noPreempt, preemptDelay)
	return cfg, nil
}

// group builds one instance per VRID (in the order of the VRIDs' first
// NICs), as the original does: VRRP runs on the group's first NIC with an
// address of its own that is not skipped, and carries the VIPs of every NIC
// of the group.
func (c *Config) group(nics []nicModel, noPreempt bool, preemptDelay time.Duration) {
	var order []int
	groups := map[int][]nicModel{}
	for _, m := range nics {
		if _, ok := groups[m.vrid]; !ok {
			order = append(order, m.vrid)
		}
		groups[m.vrid] = append(groups[m.vrid], m)
	}
	// Only the first floating-only NIC with a gateway gets the default
	// route, as in the original: a router has one default route.
	defaultRouteNIC := ""
	for _, m := range nics {
		if !m.HasIP() && len(m.VIPs) > 0 && m.Gateway.IsValid() {
			defaultRouteNIC = m.Name
			break
		}
	}
	for _, id := range order {
		members := groups[id]
		var k *nicModel
		for i := range members {
			if !members[i].skip && members[i].HasIP() {
				k = &members[i]
				break
			}
		}
		var names []string
		for _, m := range members {
			names = append(names, m.Name)
		}
		if k == nil {
			for _, m := range members {
				if len(m.VIPs) > 0 {
					c.Warnings = append(c.Warnings, fmt.Sprintf("VRID %d: none of %s has an address of its own and is not skipped, so nothing runs VRRP for it and its floating IPs are not managed", id, strings.Join(names, " ")))
					break
				}
			}
			continue
		}
		in := VRRPInstance{
			Name: strings.ToUpper(k.Name), Interface: k.Name, VRID: id,
			Priority: k.priority, Interval: k.interval, Password: k.password,
			NoPreempt: noPreempt, PreemptDelay: preemptDelay, NICs: names,
		}
		if len(k.peers) > 0 {
			in.UnicastSrc, in.UnicastPeers = k.IP.Addr(), k.peers
		}
		if in.Version() == 3 && in.Password != "" {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s: VRRPv3 (interval %s) has no authentication; the password is not used", in.Name, seconds(in.Interval)))
		}
		for _, m := range members {
			for _, v := range m.VIPs {
				in.VIPs = append(in.VIPs, VIP{Prefix: v.Prefix, Dev: m.Name})
			}
			if !m.HasIP() && len(m.VIPs) > 0 {
				c.LinksUp = append(c.LinksUp, m.Name)
			}
			if m.Name != k.Name && len(m.VIPs) > 0 {
				in.Track = append(in.Track, m.Name)
			}
			if m.Name == defaultRouteNIC {
				in.Routes = append(in.Routes, Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: m.Gateway, Dev: m.Name})
			}
			if m.Name != k.Name && len(m.peers) > 0 {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s is ignored: VRRP for VRID %d runs on %s", m.peersVar, id, k.Name))
			}
		}
		c.Instances = append(c.Instances, in)
	}
}

// NeedsServiceID reports whether the VRID would come from SERVICE_ID if the
// context had one: no VRID variable, no SERVICE_ID, and some NIC with a
// floating IP (a router without VIPs runs no VRRP). The user guide has the
// router ask OneGate for its service then.
func NeedsServiceID(env onecontext.Env) bool {
	if env.Has(VarVRID) || env.Has(VarLegacyVRID) || env.Has(VarServiceID) {
		return false
	}
	top, err := env.Topology()
	if err != nil {
		return false
	}
	for _, n := range top.NICs {
		if len(n.VIPs) > 0 {
			return true
		}
	}
	return false
}

// defaultVRID is ONEAPP_VNF_KEEPALIVED_VRID, else VROUTER_KEEPALIVED_ID,
// else SERVICE_ID % 255 + 1, else VMID % 255 + 1, else 1: never 0.
func defaultVRID(env onecontext.Env) (int, string, error) {
	for _, v := range []string{VarVRID, VarLegacyVRID} {
		if env.Has(v) {
			n, err := env.Int(v, 0, 1, 255)
			return n, "", err
		}
	}
	for _, v := range []string{VarServiceID, VarVMID} {
		if !env.Has(v) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSpace(env.Get(v)), 10, 63)
		if err != nil {
			return 0, "", onecontext.Errorf(v, env.Get(v), "not a whole number")
		}
		vrid := int(id%255) + 1
		warn := ""
		if v == VarVMID {
			warn = fmt.Sprintf("VRID %d derived from VMID: instances of one virtual router have different VMIDs and so different VRIDs; set %s or %s", vrid, VarVRID, VarLegacyVRID)
		}
		return vrid, warn, nil
	}
	return 1, fmt.Sprintf("no %s, %s, %s or %s: VRID 1", VarVRID, VarLegacyVRID, VarServiceID, VarVMID), nil
}

// parseInterval reads an advertisement interval: a positive number of
// seconds; whole seconds up to 255 (VRRPv2), or with a fraction in
// centiseconds up to 40.95 (VRRPv3).
func parseInterval(env onecontext.Env, name string, def time.Duration) (time.Duration, error) {
	d, err := env.Seconds(name, def, minInterval, maxInterval)
	if err != nil {
		return 0, onecontext.Errorf(name, env.Get(name), "not a positive number of seconds (0.01-255)")
	}
	if d%time.Second != 0 {
		if d > maxIntervalV3 {
			return 0, onecontext.Errorf(name, env.Get(name), "an interval with a fraction of a second (VRRPv3) can be at most 40.95")
		}
		if d%(10*time.Millisecond) != 0 {
			return 0, onecontext.Errorf(name, env.Get(name), "VRRPv3 intervals have centisecond resolution (e.g. 0.1, 0.25)")
		}
	}
	return d, nil
}

// checkPassword accepts what keepalived's PASS authentication carries
// intact: at most 8 printable characters, none that keepalived's config
// parser would take as syntax (comments, blocks, quotes, $ substitution).
func checkPassword(name, pw string) error {
	if pw == "" {
		return nil
	}
	if len(pw) > MaxPassword {
		return onecontext.Errorf(name, pw, "longer than %d characters (keepalived would silently cut it)", MaxPassword)
	}
	for _, r := range pw {
		if r <= ' ' || r > '~' || strings.ContainsRune(`"'#!{}\$`, r) {
			return onecontext.Errorf(name, pw, "only printable characters other than blanks and \" ' # ! { } \\ $")
		}
	}
	return nil
}

// ParsePeers parses a list of unicast peers; the NIC's own address is
// dropped, so every instance of a virtual router can share one list.
func ParsePeers(name, value string, own netip.Addr) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, f := range onecontext.SplitList(value) {
		a, err := netip.ParseAddr(f)
		if err != nil || !a.Is4() || a.IsUnspecified() || a.IsMulticast() {
			return nil, onecontext.Errorf(name, value, "%q is not a unicast IPv4 address", f)
		}
		if a == own || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	return out, nil
}
