package sdnat4

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/hypercx/vrouter/pkg/garp"
	"github.com/hypercx/vrouter/pkg/ifaddr"
	"github.com/hypercx/vrouter/pkg/netfilter"
)

// Netlink is the part of vishvananda/netlink's *Handle SDNAT4 uses: the
// addresses of lo, and conntrack (a *netlink.Handle satisfies it).
type Netlink interface {
	ifaddr.Netlink
	ConntrackDeleteFilters(table netlink.ConntrackTableType, family netlink.InetFamily, filters ...netlink.CustomConntrackFilter) (uint, error)
}

// System opens a netlink handle in the current network namespace.
func System() (Netlink, func(), error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, nil, fmt.Errorf("opening netlink: %w", err)
	}
	return h, h.Close, nil
}

// Applier converges the kernel to a Desired: the nat rules through
// netfilter (one iptables-restore transaction), the lo addresses through
// netlink. It remembers what it applied, to end the connections of
// mappings that change.
type Applier struct {
	Netfilter *netfilter.Applier
	Addrs     ifaddr.Owned
	Conntrack Netlink
	// Announce sends gratuitous ARP for addresses on a NIC (garp.Announce;
	// nil announces nothing).
	Announce func(dev string, addrs []netip.Addr) error

	applied map[netip.Addr]netip.Addr // public -> private, as last applied
}

// NewApplier returns an Applier owning the SDNAT4 addresses of lo.
func NewApplier(nf *netfilter.Applier, nl Netlink) *Applier {
	return &Applier{Netfilter: nf, Addrs: ifaddr.Owned{Netlink: nl, Dev: Dev, Label: Label, Log: nf.Log}, Conntrack: nl}
}

// Announce is the real Applier.Announce: two gratuitous ARP requests per
// address.
func Announce(dev string, addrs []netip.Addr) error { return garp.Announce(dev, addrs, 2) }

// Result says what an Apply changed.
type Result struct {
	Changed        bool
	Rules          netfilter.Result
	Added, Removed int
	// Ended counts the connections (conntrack entries) of removed or
	// changed mappings that were deleted.
	Ended uint
}

// Apply makes the kernel match d; when it already does, it only reads
// (iptables-save, an address dump) and writes nothing. Public addresses
// that go are removed from lo before their rules, and new ones are added
// after theirs, so the router never claims an address it does not map.
func (a *Applier) Apply(ctx context.Context, d Desired) (Result, error) {
	var res Result
	t0 := time.Now()
	plan, err := a.Addrs.Plan(d.Addrs)
	if err != nil {
		return res, err
	}
	for _, p := range plan.Foreign {
		a.log().Warn("a public address is already on lo under another label; leaving it as it is", "addr", p.String())
	}
	if err := a.Addrs.Remove(plan.Del); err != nil {
		return res, err
	}
	res.Removed = len(plan.Del)
	t1 := time.Now()
	rr, err := a.Netfilter.Apply(ctx, d.Rules)
	res.Rules = rr
	if err != nil {
		return res, err
	}
	t2 := time.Now()
	if err := a.Addrs.Add(plan.Add); err != nil {
		return res, err
	}
	res.Added = len(plan.Add)
	a.announce(plan.Add, d.Mappings)
	t3 := time.Now()
	res.Ended = a.endConnections(plan.Del, d.Mappings)
	a.log().Debug("apply phases", "addresses_read_removed", t1.Sub(t0), "rules", t2.Sub(t1), "addresses_added", t3.Sub(t2), "conntrack", time.Since(t3))
	res.Changed = rr.Changed || res.Added > 0 || res.Removed > 0
	return res, nil
}

// announce sends gratuitous ARP for the public addresses just added, on
// the NIC of each one's network: the addresses live on lo, out of
// keepalived's hands, so after a failover the upstream gateway would go on
// sending their traffic to the old master until its ARP cache expired.
// Best effort: a failure is logged, the mapping stays.
func (a *Applier) announce(added []netip.Prefix, maps []Mapping) {
	if a.Announce == nil || len(added) == 0 {
		return
	}
	out := map[netip.Addr]string{}
	for _, m := range maps {
		out[m.External] = m.Out
	}
	byDev := map[string][]netip.Addr{}
	var devs []string
	for _, p := range added {
		dev := out[p.Addr()]
		if dev == "" {
			continue // a routed block: nobody on a link of ours asks for it
		}
		if _, ok := byDev[dev]; !ok {
			devs = append(devs, dev)
		}
		byDev[dev] = append(byDev[dev], p.Addr())
	}
	for _, dev := range devs {
		if err := a.Announce(dev, byDev[dev]); err != nil {
			a.log().Warn("announcing public addresses (gratuitous ARP)", "dev", dev, "err", err)
			continue
		}
		a.log().Debug("announced", "dev", dev, "count", len(byDev[dev]))
	}
}

// endConnections deletes the conntrack entries of the public addresses that
// are no longer mapped, or now mapped to another VM: without it their
// established connections would go on being translated (a UDP stream for
// ever). It runs after the rules changed, so no new entry gets the old
// translation. Failing is not fatal: the entries expire on their own.
func (a *Applier) endConnections(removed []netip.Prefix, maps []Mapping) uint {
	now := make(map[netip.Addr]netip.Addr, len(maps))
	for _, m := range maps {
		now[m.External] = m.Internal
	}
	var gone []netip.Addr
	for _, p := range removed {
		gone = append(gone, p.Addr())
	}
	for ext, in := range a.applied {
		if to, ok := now[ext]; ok && to != in {
			gone = append(gone, ext)
		}
	}
	a.applied = now
	if len(gone) == 0 || a.Conntrack == nil {
		return 0
	}
	var filters []netlink.CustomConntrackFilter
	for _, ext := range gone {
		ip := net.IP(ext.AsSlice())
		in, out := &netlink.ConntrackFilter{}, &netlink.ConntrackFilter{}
		// Connections to the public address (DNAT), and the VM's own
		// connections translated to it (SNAT: the reply goes to it).
		if in.AddIP(netlink.ConntrackOrigDstIP, ip) != nil || out.AddIP(netlink.ConntrackReplyDstIP, ip) != nil {
			continue
		}
		filters = append(filters, in, out)
	}
	n, err := a.Conntrack.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.FAMILY_V4, filters...)
	if err != nil {
		a.log().Warn("ending the connections of removed mappings", "addresses", len(gone), "err", err)
	}
	if n > 0 {
		a.log().Info("connections of removed mappings ended", "addresses", len(gone), "connections", n)
	}
	return n
}

func (a *Applier) log() *slog.Logger {
	if a.Addrs.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Addrs.Log
}

// Teardown removes every SDNAT4 address from lo, then the chains and their
// jumps. It succeeds on a system where nothing is installed.
func (a *Applier) Teardown(ctx context.Context) error {
	return errors.Join(a.Addrs.Teardown(), a.Netfilter.Teardown(ctx, Skeleton()))
}

// Diff describes every difference between the kernel and d.
func (a *Applier) Diff(ctx context.Context, d Desired) ([]string, error) {
	drift, err := a.Netfilter.Diff(ctx, d.Rules)
	if err != nil {
		return nil, err
	}
	ad, err := a.Addrs.Diff(d.Addrs)
	if err != nil {
		return nil, err
	}
	return append(drift, ad...), nil
}

// Present reports whether anything of SDNAT4 is in the kernel.
func (a *Applier) Present(ctx context.Context) (bool, error) {
	chains, err := a.Netfilter.Present(ctx, Skeleton())
	if err != nil || chains {
		return chains, err
	}
	ours, _, err := a.Addrs.List()
	return len(ours) > 0, err
}
