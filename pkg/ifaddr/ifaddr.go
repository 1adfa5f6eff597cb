// Package ifaddr keeps a set of IPv4 addresses on a link, owned by their
// label (`ip addr add 203.0.113.20/32 dev lo label SDNAT4`), through
// netlink: addresses with the label that are not wanted are removed, wanted
// ones that are missing are added, and every other address of the link is
// left alone. Reads are dumps; nothing is written when the link already
// matches.
package ifaddr

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
)

// Netlink is the part of vishvananda/netlink's *Handle used here (a
// *netlink.Handle satisfies it; ifaddrtest.Netlink is the fake).
type Netlink interface {
	LinkByName(name string) (netlink.Link, error)
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	AddrAdd(link netlink.Link, addr *netlink.Addr) error
	AddrDel(link netlink.Link, addr *netlink.Addr) error
}

// Owned is the set of addresses with Label on Dev.
type Owned struct {
	Netlink Netlink
	Dev     string // "lo"
	Label   string // "SDNAT4" (at most 15 bytes: IFNAMSIZ)
	Log     *slog.Logger
}

// Change is what it takes to go from the live addresses to the wanted ones.
type Change struct {
	Add, Del []netip.Prefix
	// Foreign are wanted addresses already on the link under another label:
	// someone else's, left alone (and never removed by Teardown).
	Foreign []netip.Prefix
}

// Empty reports whether nothing needs to change.
func (c Change) Empty() bool { return len(c.Add) == 0 && len(c.Del) == 0 }

func (o Owned) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

func (o Owned) link() (netlink.Link, error) {
	l, err := o.Netlink.LinkByName(o.Dev)
	if err != nil {
		return nil, fmt.Errorf("finding link %s: %w", o.Dev, err)
	}
	return l, nil
}

// List returns the addresses of the link carrying the label (ours) and the
// other IPv4 addresses (theirs), each sorted.
func (o Owned) List() (ours, theirs []netip.Prefix, err error) {
	l, err := o.link()
	if err != nil {
		return nil, nil, err
	}
	addrs, err := o.Netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return nil, nil, fmt.Errorf("listing addresses of %s: %w", o.Dev, err)
	}
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		if !ok {
			continue
		}
		if a.Label == o.Label {
			ours = append(ours, p)
		} else {
			theirs = append(theirs, p)
		}
	}
	sortPrefixes(ours)
	sortPrefixes(theirs)
	return ours, theirs, nil
}

// Plan compares the link with want.
func (o Owned) Plan(want []netip.Prefix) (Change, error) {
	ours, theirs, err := o.List()
	if err != nil {
		return Change{}, err
	}
	var c Change
	wanted := map[netip.Prefix]bool{}
	for _, p := range want {
		wanted[p] = true
	}
	have := map[netip.Prefix]bool{}
	for _, p := range ours {
		have[p] = true
		if !wanted[p] {
			c.Del = append(c.Del, p)
		}
	}
	foreign := map[netip.Prefix]bool{}
	for _, p := range theirs {
		foreign[p] = true
	}
	for _, p := range want {
		switch {
		case have[p]:
		case foreign[p]:
			c.Foreign = append(c.Foreign, p)
		default:
			c.Add = append(c.Add, p)
			have[p] = true
		}
	}
	sortPrefixes(c.Add)
	return c, nil
}

// Remove deletes addresses of ours; one already gone is not an error.
func (o Owned) Remove(ps []netip.Prefix) error {
	if len(ps) == 0 {
		return nil
	}
	l, err := o.link()
	if err != nil {
		return err
	}
	var errs []error
	n := 0
	for _, p := range ps {
		if err := o.Netlink.AddrDel(l, o.addr(p)); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("removing %s from %s: %w", p, o.Dev, err))
			continue
		}
		n++
	}
	if n > 0 {
		o.log().Info("addresses removed", "dev", o.Dev, "label", o.Label, "count", n, "first", ps[0].String())
	}
	return errors.Join(errs...)
}

// Add adds addresses with the label; one already there is not an error.
func (o Owned) Add(ps []netip.Prefix) error {
	if len(ps) == 0 {
		return nil
	}
	l, err := o.link()
	if err != nil {
		return err
	}
	var errs []error
	n := 0
	for _, p := range ps {
		if err := o.Netlink.AddrAdd(l, o.addr(p)); err != nil && !errors.Is(err, syscall.EEXIST) {
			errs = append(errs, fmt.Errorf("adding %s to %s label %s: %w", p, o.Dev, o.Label, err))
			continue
		}
		n++
	}
	if n > 0 {
		o.log().Info("addresses added", "dev", o.Dev, "label", o.Label, "count", n, "first", ps[0].String())
	}
	return errors.Join(errs...)
}

// Teardown removes every address of the link carrying the label. It
// succeeds when there is none.
func (o Owned) Teardown() error {
	ours, _, err := o.List()
	if err != nil {
		return err
	}
	return o.Remove(ours)
}

// Diff describes the differences between the link and want, for status.
func (o Owned) Diff(want []netip.Prefix) ([]string, error) {
	c, err := o.Plan(want)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range c.Add {
		out = append(out, fmt.Sprintf("addr:%s: %s label %s missing", o.Dev, p, o.Label))
	}
	for _, p := range c.Del {
		out = append(out, fmt.Sprintf("addr:%s: %s label %s present but not wanted", o.Dev, p, o.Label))
	}
	return out, nil
}

// Render prints want as render's addr:<dev> body: "<prefix> label <label>".
func (o Owned) Render(want []netip.Prefix) []byte {
	var b strings.Builder
	for _, p := range want {
		b.WriteString(p.String() + " label " + o.Label + "\n")
	}
	return []byte(b.String())
}

func (o Owned) addr(p netip.Prefix) *netlink.Addr {
	a := p.Addr().As4()
	return &netlink.Addr{
		IPNet: &net.IPNet{IP: net.IP(a[:]), Mask: net.CIDRMask(p.Bits(), 32)},
		Label: o.Label,
	}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	if !a.Is4() {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a, bits), true
}

func sortPrefixes(ps []netip.Prefix) {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
}
