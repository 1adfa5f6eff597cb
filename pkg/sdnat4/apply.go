package sdnat4

import (
	"context"
	"errors"
	"log/slog"

	"github.com/hypercx/vrouter/pkg/ifaddr"
	"github.com/hypercx/vrouter/pkg/netfilter"
)

// Applier converges the kernel to a Desired: the nat rules through
// netfilter (one iptables-restore transaction), the lo addresses through
// netlink.
type Applier struct {
	Netfilter *netfilter.Applier
	Addrs     ifaddr.Owned
}

// NewApplier returns an Applier owning the SDNAT4 addresses of lo.
func NewApplier(nf *netfilter.Applier, nl ifaddr.Netlink) Applier {
	log := nf.Log
	return Applier{Netfilter: nf, Addrs: ifaddr.Owned{Netlink: nl, Dev: Dev, Label: Label, Log: log}}
}

// Result says what an Apply changed.
type Result struct {
	Changed        bool
	Rules          netfilter.Result
	Added, Removed int
}

// Apply makes the kernel match d; when it already does, it only reads
// (iptables-save, an address dump) and writes nothing. Public addresses
// that go are removed from lo before their rules, and new ones are added
// after theirs, so the router never claims an address it does not map.
func (a Applier) Apply(ctx context.Context, d Desired) (Result, error) {
	var res Result
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
	rr, err := a.Netfilter.Apply(ctx, d.Rules)
	res.Rules = rr
	if err != nil {
		return res, err
	}
	if err := a.Addrs.Add(plan.Add); err != nil {
		return res, err
	}
	res.Added = len(plan.Add)
	res.Changed = rr.Changed || res.Added > 0 || res.Removed > 0
	return res, nil
}

func (a Applier) log() *slog.Logger {
	if a.Addrs.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Addrs.Log
}

// Teardown removes every SDNAT4 address from lo, then the chains and their
// jumps. It succeeds on a system where nothing is installed.
func (a Applier) Teardown(ctx context.Context) error {
	return errors.Join(a.Addrs.Teardown(), a.Netfilter.Teardown(ctx, Skeleton()))
}

// Diff describes every difference between the kernel and d.
func (a Applier) Diff(ctx context.Context, d Desired) ([]string, error) {
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
func (a Applier) Present(ctx context.Context) (bool, error) {
	chains, err := a.Netfilter.Present(ctx, Skeleton())
	if err != nil || chains {
		return chains, err
	}
	ours, _, err := a.Addrs.List()
	return len(ours) > 0, err
}
