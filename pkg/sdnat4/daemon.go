package sdnat4

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hypercx/vrouter/pkg/onegate"
)

// Gate is the part of the OneGate client SDNAT4 uses.
type Gate interface {
	Networks(ctx context.Context) ([]onegate.VNet, error)
}

// NewGate builds the real OneGate client.
func NewGate(cfg onegate.Config, log *slog.Logger) (Gate, func(), error) {
	c, err := onegate.New(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	return c, c.Close, nil
}

// Poll is the outcome of one poll, for OnPoll.
type Poll struct {
	Enabled  bool
	Mappings []Mapping
	Skips    []Skip
	Result   Result
	// GateErr is OneGate's error: nil, a stale answer (the last good one
	// was used), or the failure that kept the current mappings.
	GateErr error
	// Err is a failure to apply.
	Err error
}

// Daemon keeps the mappings in line with OneGate: it polls every
// Spec.Refresh, and at once after a reload.
type Daemon struct {
	Log   *slog.Logger
	Apply *Applier
	// NewGate builds a OneGate client for a configuration (NewGate when nil).
	NewGate func(onegate.Config, *slog.Logger) (Gate, func(), error)
	// Reload receives a value for every SIGHUP; LoadSpec then reads the
	// context again (a context that does not parse keeps the last good one).
	Reload   <-chan struct{}
	LoadSpec func() (Spec, error)
	// OnPoll, when set, sees every poll (state file, tests, benchmarks).
	OnPoll func(Poll)

	gate     Gate
	closeG   func()
	gateKey  string
	nets     []onegate.VNet // the last usable answer
	haveNets bool
	warned   map[string]bool
	idle     bool
}

// gateKey identifies a OneGate configuration (the token included, never
// printed).
func gateKey(c onegate.Config) string {
	return fmt.Sprintf("%s|%d|%t|%s|%s", c.String(), c.VMID, c.SkipTLSVerify, c.TokenPath, string(c.Token))
}

// Run polls until ctx ends. It returns nil then: the mappings stay in the
// kernel (`stop` removes them), so a restarted daemon takes over without a
// gap.
func (d *Daemon) Run(ctx context.Context, spec Spec) error {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.NewGate == nil {
		d.NewGate = NewGate
	}
	defer func() {
		if d.closeG != nil {
			d.closeG()
		}
	}()
	d.Log.Info("starting", "enabled", spec.Enabled, "refresh", spec.Refresh.String(), "subnets", spec.subnetList())
	d.poll(ctx, spec)
	tick := time.NewTicker(spec.Refresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			d.poll(ctx, spec)
		case <-d.Reload:
			if d.LoadSpec == nil {
				continue
			}
			next, err := d.LoadSpec()
			if err != nil {
				d.Log.Error("reloading the context failed; keeping the last good one", "err", err)
				continue
			}
			spec = next
			tick.Reset(spec.Refresh)
			d.Log.Info("context reloaded", "enabled", spec.Enabled, "refresh", spec.Refresh.String(), "subnets", spec.subnetList())
			d.poll(ctx, spec)
		}
	}
}

func (d *Daemon) ensureGate(cfg onegate.Config) error {
	key := gateKey(cfg)
	if d.gate != nil && key == d.gateKey {
		return nil
	}
	g, closeG, err := d.NewGate(cfg, d.Log)
	if err != nil {
		return fmt.Errorf("building the OneGate client: %w", err)
	}
	if d.closeG != nil {
		d.closeG()
	}
	d.gate, d.closeG, d.gateKey = g, closeG, key
	return nil
}

// poll runs one round: ask OneGate, discover, apply.
func (d *Daemon) poll(ctx context.Context, spec Spec) {
	p := Poll{Enabled: spec.Enabled}
	start := time.Now()
	defer func() {
		if d.OnPoll != nil && ctx.Err() == nil {
			d.OnPoll(p)
		}
	}()
	if !spec.Enabled {
		if !d.idle {
			p.Err = d.Apply.Teardown(ctx)
			if p.Err != nil {
				d.Log.Error("removing the mappings", "err", p.Err)
				return
			}
			d.Log.Info("SDNAT4 is disabled: no mappings; waiting for a context that enables it", "var", VarEnabled)
			d.idle = true
		}
		return
	}
	d.idle = false
	if err := d.ensureGate(spec.OneGate); err != nil {
		p.GateErr = err
		d.Log.Error("OneGate unusable; keeping the current mappings", "err", err)
		return
	}
	// A poll never asks OneGate for longer than the refresh interval: during
	// an outage the client's retries end there and its last good answers
	// are used, so the next poll starts on time.
	gctx, cancel := context.WithTimeout(ctx, spec.Refresh)
	nets, err := d.gate.Networks(gctx)
	cancel()
	p.GateErr = err
	switch {
	case ctx.Err() != nil:
		return
	case err == nil:
		d.nets, d.haveNets = nets, true
	case errors.Is(err, onegate.ErrStale):
		d.Log.Warn("OneGate failed; using its last good answers", "err", err)
		d.nets, d.haveNets = nets, true
	case !d.haveNets:
		d.Log.Warn("OneGate failed and has never answered; nothing changed", "err", err)
		return
	default:
		d.Log.Warn("OneGate failed; keeping the current mappings", "err", err)
	}
	maps, skips := Discover(d.nets, spec)
	p.Mappings, p.Skips = maps, skips
	d.report(skips)
	applyStart := time.Now()
	res, err := d.Apply.Apply(ctx, Render(spec, maps))
	p.Result, p.Err = res, err
	applyTook := time.Since(applyStart)
	switch {
	case err != nil:
		d.Log.Error("applying the mappings failed", "err", err)
	case res.Changed:
		d.Log.Info("mappings applied", "mappings", len(maps), "addresses_added", res.Added, "addresses_removed", res.Removed,
			"chains_changed", res.Rules.Chains, "jumps", res.Rules.Jumps, "connections_ended", res.Ended, "skipped_leases", len(skips),
			"apply_took", applyTook, "poll_took", time.Since(start))
		for _, m := range maps {
			d.Log.Debug("mapping", "public", m.External.String(), "private", m.Internal.String(), "vm", m.VM, "out", m.Out, "lease", m.Lease)
		}
	}
}

// report logs each skipped lease once while it stays skipped (a warning,
// or at debug level when the lease is another router's business).
func (d *Daemon) report(skips []Skip) {
	now := map[string]bool{}
	for _, s := range skips {
		k := s.String()
		now[k] = true
		if d.warned[k] {
			continue
		}
		if s.Foreign {
			d.Log.Debug("external lease not mapped", "lease", s.Lease, "reason", s.Reason)
		} else {
			d.Log.Warn("external lease not mapped", "lease", s.Lease, "reason", s.Reason)
		}
	}
	var gone []string
	for k := range d.warned {
		if !now[k] {
			gone = append(gone, k)
		}
	}
	if len(gone) > 0 {
		d.Log.Debug("leases no longer skipped", "leases", strings.Join(gone, "; "))
	}
	d.warned = now
}
