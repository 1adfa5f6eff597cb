// Package onelease holds the coredhcp plugins of one-dhcp4v2: `onelease`
// (leases: MAC-to-IP, pools, exclusions, expiry, persistence, RELEASE and
// DECLINE, authoritative NAKs) and the option plugins `server_id`,
// `netmask`, `router`, `dns` and `mtu`.
//
// The option plugins take the same arguments as coredhcp's stock plugins of
// those names, but each server gets its own values: the stock ones keep them
// in package variables, so two NICs served by one process would share them
// (routers and DNS servers even accumulate). Nothing here is registered at
// import time: a Set is built by the caller (main), one per server, and its
// Plugins are handed to the server explicitly.
package onelease

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coredhcp/coredhcp/handler"
	"github.com/coredhcp/coredhcp/plugins"
	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/hypercx/vrouter/pkg/fsroot"
)

// Deps are what the plugins need from outside.
type Deps struct {
	Root fsroot.Root // lease files are taken under it
	Log  *slog.Logger
	Now  func() time.Time
	// LinkMTU reads an interface's MTU (for `mtu %ethX`).
	LinkMTU func(name string) (int, error)
	// SyncInterval is how often lease files are fsynced (default 1 s).
	SyncInterval time.Duration
}

// Set is one generation of plugin instances; Close releases what they hold.
type Set struct {
	d      Deps
	mu     sync.Mutex
	leases []*Leases
}

// NewSet returns an empty Set.
func NewSet(d Deps) *Set {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.LinkMTU == nil {
		d.LinkMTU = func(name string) (int, error) {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return 0, err
			}
			return ifi.MTU, nil
		}
	}
	return &Set{d: d}
}

// Plugins are the plugins of this Set, in coredhcp's form.
func (s *Set) Plugins() []*plugins.Plugin {
	return []*plugins.Plugin{
		{Name: "server_id", Setup4: s.setupServerID},
		{Name: "netmask", Setup4: s.setupNetmask},
		{Name: "router", Setup4: s.setupRouter},
		{Name: "dns", Setup4: s.setupDNS},
		{Name: "mtu", Setup4: s.setupMTU},
		{Name: "onelease", Setup4: s.setupOnelease},
	}
}

// Check validates a plugin's arguments without side effects (no file is
// opened, no interface read).
func (s *Set) Check(name string, args ...string) error {
	var err error
	switch name {
	case "server_id":
		_, err = oneAddr(args)
	case "netmask":
		_, err = parseNetmask(args)
	case "router", "dns":
		_, err = addrs(args)
	case "mtu":
		_, _, err = parseMTU(args)
	case "onelease":
		_, err = ParseArgs(args)
	default:
		return fmt.Errorf("unknown plugin %q", name)
	}
	if err != nil {
		return fmt.Errorf("plugin %s: %w", name, err)
	}
	return nil
}

// Leases are the lease databases opened by this Set.
func (s *Set) Leases() []*Leases {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Leases(nil), s.leases...)
}

// Close flushes and closes every lease file of the Set.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, l := range s.leases {
		errs = append(errs, l.Close())
	}
	s.leases = nil
	return errors.Join(errs...)
}

func (s *Set) setupOnelease(args ...string) (handler.Handler4, error) {
	cfg, err := ParseArgs(args)
	if err != nil {
		return nil, err
	}
	cfg.File = s.d.Root.Path(cfg.File)
	l, err := Load(cfg, s.d.Now, s.d.Log, s.d.SyncInterval)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.leases = append(s.leases, l)
	s.mu.Unlock()
	return l.Handler4, nil
}

var macPrefixRe = regexp.MustCompile(`^[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}$`)

// ParseArgs parses the onelease arguments:
//
//	<lease file> <start> <end> <lease time> [--excluded-ips a,b,…] [--mac2ip] [--mac2ip-prefix XX:YY] [--authoritative]
//
// (the original's grammar, plus --authoritative). Errors are returned, never
// fatal to the process.
func ParseArgs(args []string) (Config, error) {
	var c Config
	if len(args) < 4 {
		return c, fmt.Errorf("want <lease file> <start> <end> <lease time> [flags], got %d arguments", len(args))
	}
	c.File = args[0]
	if !strings.HasPrefix(c.File, "/") {
		return c, fmt.Errorf("lease file %q is not an absolute path", c.File)
	}
	var err error
	if c.Start, err = netip.ParseAddr(args[1]); err != nil || !c.Start.Is4() {
		return c, fmt.Errorf("pool start %q is not an IPv4 address", args[1])
	}
	if c.End, err = netip.ParseAddr(args[2]); err != nil || !c.End.Is4() {
		return c, fmt.Errorf("pool end %q is not an IPv4 address", args[2])
	}
	if c.End.Less(c.Start) {
		return c, fmt.Errorf("pool start %s is after its end %s", c.Start, c.End)
	}
	if c.LeaseTime, err = time.ParseDuration(args[3]); err != nil || c.LeaseTime < time.Second {
		return c, fmt.Errorf("lease time %q is not a duration of at least 1s", args[3])
	}
	c.MACPrefix = [2]byte{0x02, 0x00}
	rest := args[4:]
	for i := 0; i < len(rest); i++ {
		flag, val, hasVal := strings.Cut(rest[i], "=")
		next := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(rest) {
				return "", fmt.Errorf("%s needs a value", flag)
			}
			i++
			return rest[i], nil
		}
		switch flag {
		case "--excluded-ips":
			v, err := next()
			if err != nil {
				return c, err
			}
			for _, item := range strings.Split(v, ",") {
				a, err := netip.ParseAddr(strings.TrimSpace(item))
				if err != nil || !a.Is4() {
					return c, fmt.Errorf("excluded address %q is not an IPv4 address", item)
				}
				c.Excluded = append(c.Excluded, a)
			}
		case "--mac2ip":
			c.MAC2IP = true
		case "--mac2ip-prefix":
			v, err := next()
			if err != nil {
				return c, err
			}
			if !macPrefixRe.MatchString(v) {
				return c, fmt.Errorf("MAC prefix %q is not two hex bytes such as 02:00", v)
			}
			hw, _ := strconv.ParseUint(v[0:2]+v[3:5], 16, 16)
			c.MACPrefix = [2]byte{byte(hw >> 8), byte(hw)}
		case "--authoritative":
			c.Authoritative = true
		default:
			return c, fmt.Errorf("unknown argument %q", rest[i])
		}
	}
	return c, nil
}

// The option plugins.

func oneAddr(args []string) (netip.Addr, error) {
	if len(args) != 1 {
		return netip.Addr{}, fmt.Errorf("want one IPv4 address, got %d arguments", len(args))
	}
	a, err := netip.ParseAddr(args[0])
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", args[0])
	}
	return a, nil
}

func addrs(args []string) ([]net.IP, error) {
	if len(args) == 0 {
		return nil, errors.New("want at least one IPv4 address")
	}
	var out []net.IP
	for _, s := range args {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 address", s)
		}
		out = append(out, a.AsSlice())
	}
	return out, nil
}

func parseNetmask(args []string) (net.IPMask, error) {
	a, err := oneAddr(args)
	if err != nil {
		return nil, err
	}
	m := net.IPMask(a.AsSlice())
	if ones, bits := m.Size(); bits == 0 || ones == 0 {
		return nil, fmt.Errorf("%s is not a contiguous netmask", a)
	}
	return m, nil
}

// parseMTU takes a number (68-65535) or %ethX: the MTU of that link, read
// when the server starts.
func parseMTU(args []string) (int, string, error) {
	if len(args) != 1 {
		return 0, "", fmt.Errorf("want one MTU or %%<interface>, got %d arguments", len(args))
	}
	if link, ok := strings.CutPrefix(args[0], "%"); ok {
		if link == "" {
			return 0, "", errors.New("empty interface name after %")
		}
		return 0, link, nil
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 68 || n > 65535 {
		return 0, "", fmt.Errorf("%q is not an MTU (68-65535)", args[0])
	}
	return n, "", nil
}

// wanted reports whether the client asked for an option, or asked for no
// options in particular (then it gets everything we have).
func wanted(req *dhcpv4.DHCPv4, code dhcpv4.OptionCode) bool {
	return !req.Options.Has(dhcpv4.OptionParameterRequestList) || req.IsOptionRequested(code)
}

func (s *Set) setupServerID(args ...string) (handler.Handler4, error) {
	a, err := oneAddr(args)
	if err != nil {
		return nil, err
	}
	id := net.IP(a.AsSlice())
	return func(req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
		resp.UpdateOption(dhcpv4.OptServerIdentifier(id))
		return resp, false
	}, nil
}

func (s *Set) setupNetmask(args ...string) (handler.Handler4, error) {
	m, err := parseNetmask(args)
	if err != nil {
		return nil, err
	}
	return func(req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
		resp.UpdateOption(dhcpv4.OptSubnetMask(m))
		return resp, false
	}, nil
}

func (s *Set) setupRouter(args ...string) (handler.Handler4, error) {
	rs, err := addrs(args)
	if err != nil {
		return nil, err
	}
	return func(req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
		resp.UpdateOption(dhcpv4.OptRouter(rs...))
		return resp, false
	}, nil
}

func (s *Set) setupDNS(args ...string) (handler.Handler4, error) {
	ns, err := addrs(args)
	if err != nil {
		return nil, err
	}
	return func(req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
		if wanted(req, dhcpv4.OptionDomainNameServer) {
			resp.UpdateOption(dhcpv4.OptDNS(ns...))
		}
		return resp, false
	}, nil
}

func (s *Set) setupMTU(args ...string) (handler.Handler4, error) {
	mtu, link, err := parseMTU(args)
	if err != nil {
		return nil, err
	}
	if link != "" {
		if mtu, err = s.d.LinkMTU(link); err != nil {
			return nil, fmt.Errorf("reading the MTU of %s: %w", link, err)
		}
		if mtu < 68 || mtu > 65535 {
			return nil, fmt.Errorf("%s has MTU %d, not a valid interface-MTU option", link, mtu)
		}
	}
	opt := dhcpv4.Option{Code: dhcpv4.OptionInterfaceMTU, Value: dhcpv4.Uint16(uint16(mtu))}
	return func(req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
		if wanted(req, dhcpv4.OptionInterfaceMTU) {
			resp.UpdateOption(opt)
		}
		return resp, false
	}, nil
}
