package lvs

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/keepalived"
	"github.com/hypercx/vrouter/pkg/netfilter"
	"github.com/hypercx/vrouter/pkg/openrc"
)

// AppliedFile is a copy of the lvs.conf keepalived last reloaded with: the
// file alone does not say whether the running keepalived has read it.
const AppliedFile = "/run/one-lvs/applied.conf"

// IPVSFile exists when the kernel has IPVS.
const IPVSFile = "/proc/net/ip_vs"

// LVS drives the virtual servers: lvs.conf (through keepalived's checked
// writer), keepalived's reload and the firewall marks.
type LVS struct {
	Root      fsroot.Root
	Files     keepalived.Files
	RC        openrc.Services
	Netfilter *netfilter.Applier
}

// Result says what Apply did.
type Result struct {
	FileChanged, Reloaded, RulesChanged bool
	// KeepalivedState is keepalived's state when it was not reloaded.
	KeepalivedState openrc.State
}

// Apply converges: the marks first (a mark without its virtual server is
// harmless), then lvs.conf, judged by keepalived -t with the rest of
// conf.d, then a reload of a running keepalived that has not read it yet.
// A keepalived that does not run reads it when one-failover starts it.
func (l LVS) Apply(ctx context.Context, d Desired) (Result, error) {
	var res Result
	if d.Marks {
		r, err := l.Netfilter.Apply(ctx, d.Rules)
		if err != nil {
			return res, err
		}
		res.RulesChanged = r.Changed
	} else if err := l.Netfilter.Teardown(ctx, Skeleton()); err != nil {
		return res, err
	}
	changed, err := l.Files.Write(ctx, map[string][]byte{ConfigFile: d.Config})
	if err != nil {
		return res, err
	}
	res.FileChanged = len(changed) > 0
	if err := l.reload(ctx, d.Config, &res); err != nil {
		return res, err
	}
	return res, nil
}

// reload makes a running keepalived read config unless it already has.
func (l LVS) reload(ctx context.Context, config []byte, res *Result) error {
	st := openrc.Missing
	if l.RC.Installed(keepalived.Service) {
		var err error
		if st, err = l.RC.Status(ctx, keepalived.Service); err != nil {
			return fmt.Errorf("querying keepalived's state: %w", err)
		}
	}
	res.KeepalivedState = st
	if st != openrc.Started {
		// Whoever starts keepalived starts it with this file.
		return l.Root.Remove(AppliedFile)
	}
	if last, err := l.Root.ReadFile(AppliedFile); err == nil && bytes.Equal(last, config) {
		return nil
	}
	if err := l.Root.Remove(AppliedFile); err != nil {
		return fmt.Errorf("removing %s: %w", AppliedFile, err)
	}
	if err := keepalived.Reload(ctx, l.RC); err != nil {
		return err
	}
	res.Reloaded = true
	if _, err := l.Root.WriteFile(AppliedFile, config, 0o600); err != nil {
		return fmt.Errorf("recording the applied configuration: %w", err)
	}
	return nil
}

// Stop empties lvs.conf (an empty file is always valid: it is written
// without a check, so a broken file of someone else cannot keep the LBs up),
// reloads a running keepalived, and removes the marks. Idempotent; fine on a
// system where nothing was applied.
func (l LVS) Stop(ctx context.Context) error {
	var errs []error
	empty := Empty()
	changed := false
	if live, err := l.Root.ReadFile(ConfigFile); err == nil && !bytes.Equal(live, empty) {
		if _, err := l.Root.WriteFile(ConfigFile, empty, keepalived.FileMode); err != nil {
			errs = append(errs, fmt.Errorf("emptying %s: %w", ConfigFile, err))
		}
		changed = true
	}
	last, err := l.Root.ReadFile(AppliedFile)
	if changed || (err == nil && !bytes.Equal(last, empty)) {
		if err := keepalived.Reload(ctx, l.RC); err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.Root.Remove(AppliedFile); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", AppliedFile, err))
	}
	if err := l.Netfilter.Teardown(ctx, Skeleton()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Live is what Inspect finds.
type Live struct {
	Keepalived openrc.State
	// File: lvs.conf matches; Applied: the running keepalived read it.
	File, Applied bool
	IPVS          bool
	Rules         []string // drift of the marks
}

// Inspect looks at the live state against d without changing anything.
func (l LVS) Inspect(ctx context.Context, d Desired) (Live, error) {
	var lv Live
	lv.Keepalived = openrc.Missing
	if l.RC.Installed(keepalived.Service) {
		st, err := l.RC.Status(ctx, keepalived.Service)
		if err != nil {
			return lv, fmt.Errorf("querying keepalived's state: %w", err)
		}
		lv.Keepalived = st
	}
	live, _ := l.Root.ReadFile(ConfigFile)
	lv.File = bytes.Equal(live, d.Config)
	last, err := l.Root.ReadFile(AppliedFile)
	lv.Applied = lv.Keepalived == openrc.Started && err == nil && bytes.Equal(last, d.Config)
	lv.IPVS = l.Root.Exists(IPVSFile)
	if d.Marks {
		drift, err := l.Netfilter.Diff(ctx, d.Rules)
		if err != nil {
			return lv, err
		}
		lv.Rules = drift
	} else {
		present, err := l.Netfilter.Present(ctx, Skeleton())
		if err != nil {
			return lv, err
		}
		if present {
			lv.Rules = []string{"mangle/" + ChainFwmark + ": present without an all-ports LB"}
		}
	}
	return lv, nil
}
