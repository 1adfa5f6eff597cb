package dns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/openrc"
)

// UnboundService is the OpenRC service of the daemon.
const UnboundService = "unbound"

// AppliedFile is a copy of the configuration the running unbound was last
// started or reloaded with: `configure` may rewrite ConfigFile without
// touching unbound, so the file alone does not say what unbound runs with.
// It lives under /run, which is empty after a boot, like unbound.
const AppliedFile = "/run/one-dns/unbound.conf"

// Checker judges a candidate configuration file (unbound-checkconf).
type Checker func(ctx context.Context, path string) error

// Prober asks unbound a question on its loopback listener and returns nil
// once it answers (over TCP when UDP is disabled).
type Prober func(ctx context.Context, tcp bool) error

// Unbound drives the daemon: its configuration file, its OpenRC service and
// a readiness probe.
type Unbound struct {
	Root  fsroot.Root
	RC    openrc.Services
	Check Checker
	Probe Prober
	// ReadyTimeout bounds the wait for unbound to answer after a (re)start.
	ReadyTimeout time.Duration
}

// Action is what Apply did to the daemon.
type Action string

const (
	ActionNone    Action = "none"
	ActionStart   Action = "start"
	ActionReload  Action = "reload"
	ActionRestart Action = "restart"
)

// Result says what Apply did.
type Result struct {
	FileChanged bool
	Action      Action
}

// Apply writes the configuration (judged by unbound-checkconf before it
// replaces the live file) and brings unbound to it: started when it does not
// run, reloaded when only reloadable settings changed, restarted when the
// listening sockets or the user changed, untouched when it already runs with
// these bytes. A rejected file leaves the live file and unbound as they were.
func (u Unbound) Apply(ctx context.Context, d Desired, tcpOnly bool) (Result, error) {
	res := Result{Action: ActionNone}
	if !u.RC.Installed(UnboundService) {
		return res, fmt.Errorf("starting unbound: no OpenRC script /etc/init.d/%s (run `one-dns install`)", UnboundService)
	}
	changed, err := u.WriteConfig(ctx, d)
	if err != nil {
		return res, err
	}
	res.FileChanged = changed
	st, err := u.RC.Status(ctx, UnboundService)
	if err != nil {
		return res, fmt.Errorf("querying unbound's state: %w", err)
	}
	applied, appliedErr := u.Root.ReadFile(AppliedFile)
	switch {
	case st == openrc.Stopped:
		res.Action = ActionStart
	case st != openrc.Started:
		// crashed (supervise-daemon gave up), inactive, half started.
		res.Action = ActionRestart
	case appliedErr != nil:
		// Started by someone else, or before a reboot: its configuration is unknown.
		res.Action = ActionRestart
	case bytes.Equal(applied, d.Config):
		return res, nil
	case NeedsRestart(applied, d.Config):
		res.Action = ActionRestart
	default:
		res.Action = ActionReload
	}
	// Forget the applied configuration until unbound answers with the new
	// one, so a failed start is retried by the next apply.
	if err := u.Root.Remove(AppliedFile); err != nil {
		return res, fmt.Errorf("removing %s: %w", AppliedFile, err)
	}
	if err := u.RC.Run(ctx, UnboundService, string(res.Action)); err != nil {
		return res, fmt.Errorf("running unbound %s: %w", res.Action, err)
	}
	if err := u.waitReady(ctx, tcpOnly); err != nil {
		return res, err
	}
	if _, err := u.Root.WriteFile(AppliedFile, d.Config, 0o644); err != nil {
		return res, fmt.Errorf("recording the applied configuration: %w", err)
	}
	return res, nil
}

// WriteConfig replaces ConfigFile with d's, if unbound-checkconf accepts it
// (the log directory must exist for that), and reports whether it changed.
func (u Unbound) WriteConfig(ctx context.Context, d Desired) (bool, error) {
	if err := u.Root.MkdirAll(path.Dir(LogFile), 0o755); err != nil {
		return false, fmt.Errorf("creating unbound's log directory: %w", err)
	}
	return u.Root.WriteChecked(ConfigFile, d.Config, 0o644, func(candidate string) error { return u.Check(ctx, candidate) })
}

// waitReady waits until unbound answers on the loopback listener.
func (u Unbound) waitReady(ctx context.Context, tcp bool) error {
	timeout := u.ReadyTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := u.Probe(ctx, tcp)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for unbound to answer on 127.0.0.1:%d (see /var/log/unbound/unbound.log): %w", Port, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops unbound. Idempotent; fine where unbound is not even installed.
func (u Unbound) Stop(ctx context.Context) error {
	var errs []error
	if err := u.Root.Remove(AppliedFile); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", AppliedFile, err))
	}
	if !u.RC.Installed(UnboundService) {
		return errors.Join(errs...)
	}
	st, err := u.RC.Status(ctx, UnboundService)
	if err == nil && st == openrc.Stopped {
		return errors.Join(errs...)
	}
	if err := u.RC.Run(ctx, UnboundService, "stop"); err != nil {
		errs = append(errs, fmt.Errorf("stopping unbound: %w", err))
	}
	return errors.Join(errs...)
}

// Live is what Inspect finds.
type Live struct {
	State openrc.State
	// File: ConfigFile matches; Running: unbound runs with the desired bytes.
	File, Running bool
	// Answers: unbound answered a probe (only asked when started).
	Answers  bool
	ProbeErr error
}

// Inspect looks at the live state against d without changing anything.
func (u Unbound) Inspect(ctx context.Context, d Desired, tcpOnly bool) (Live, error) {
	var l Live
	st, err := u.RC.Status(ctx, UnboundService)
	if err != nil {
		return l, fmt.Errorf("querying unbound's state: %w", err)
	}
	l.State = st
	file, err := u.Root.ReadFile(ConfigFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return l, fmt.Errorf("reading %s: %w", ConfigFile, err)
	}
	l.File = bytes.Equal(file, d.Config)
	applied, err := u.Root.ReadFile(AppliedFile)
	l.Running = st == openrc.Started && err == nil && bytes.Equal(applied, d.Config)
	if st == openrc.Started {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		l.ProbeErr = u.Probe(pctx, tcpOnly)
		l.Answers = l.ProbeErr == nil
	}
	return l, nil
}
