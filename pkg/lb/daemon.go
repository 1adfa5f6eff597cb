package lb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/fsroot"
)

// Reloader returns a Loop's Load: it reads the context again the way the
// verb did and parses it; after sees every context that parsed.
func Reloader[S any](rt *cli.Runtime, parse func(*cli.Runtime) (S, error), after func(S)) func() (S, error) {
	return func() (S, error) {
		var zero S
		if rt.LoadEnv == nil {
			return zero, errors.New("no way to read the context again")
		}
		env, warnings, err := rt.LoadEnv()
		if err != nil {
			return zero, err
		}
		for _, w := range warnings {
			rt.Log.Warn(w)
		}
		next := *rt
		next.Env = env
		sp, err := parse(&next)
		if err == nil && after != nil {
			after(sp)
		}
		return sp, err
	}
}

// Lock takes the lock file path under root without waiting, so a second
// daemon of a service fails at once; the returned function releases it.
func Lock(root fsroot.Root, path, service string) (func(), error) {
	if err := root.MkdirAll("/run", 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(root.Path(path), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another %s daemon is running (%s is locked)", service, root.Path(path))
	}
	return func() { f.Close() }, nil
}

// KeepDir is where a service's daemon keeps OneGate's last good answers
// (under --root): /run/<service>/onegate. `stop` leaves them; they are used
// only while OneGate does not answer.
func KeepDir(service string) string { return "/run/" + service + "/onegate" }

// Daemon is a service built on the LB model, run in the foreground by Serve.
type Daemon[S any] struct {
	// Name is the service ("one-haproxy"); LockFile keeps a second daemon
	// of it from starting; StateFile, when set, is where the daemon says
	// what it keeps from OneGate (Kept), removed when it ends.
	Name, LockFile, StateFile string
	Family                    Family
	// EnabledVar and Idle: the switch, and what is logged when the daemon
	// starts with it off.
	EnabledVar, Idle string
	Parse            func(*cli.Runtime) (S, error)
	Config           func(S) Config
	// Warn logs what the user should know about an enabled context.
	Warn      func(*cli.Runtime, S)
	Apply     func(ctx context.Context, spec S, res Result) error
	Client    func(Config) (OneGate, error)
	OnApplied func(Result, error)
}

// Now is what render and status show: cfg's LBs with the dynamic servers
// OneGate reports at this moment, or, while it does not answer, those the
// running daemon keeps (ResolveOnce with ReadKept of its state file).
func (d Daemon[S]) Now(ctx context.Context, rt *cli.Runtime, cfg Config) Result {
	return ResolveOnce(ctx, d.Family, cfg, rt.Log, ReadKept(rt.Root, d.StateFile, d.Name))
}

// Serve parses the context (an invalid one is the error, exit 2), takes the
// lock, and runs the refresh loop until ctx ends; SIGHUP re-reads the
// context. A disabled service idles, its Apply tearing down, until a
// context enables it.
func (d Daemon[S]) Serve(ctx context.Context, rt *cli.Runtime) error {
	sp, err := d.Parse(rt)
	if err != nil {
		return err
	}
	unlock, err := Lock(rt.Root, d.LockFile, d.Name)
	if err != nil {
		return err
	}
	defer unlock()
	reload, stopHangups := cli.Hangups(func() { rt.Log.Info("SIGHUP: re-reading the context") })
	defer stopHangups()
	warn := func(sp S) {
		if d.Warn != nil && d.Config(sp).Enabled {
			d.Warn(rt, sp)
		}
	}
	loop := &Loop[S]{
		Family: d.Family, Log: rt.Log, Config: d.Config, Client: d.Client, Apply: d.Apply,
		Load: Reloader(rt, d.Parse, warn), Reload: reload, OnApplied: d.OnApplied,
		KeepDir: rt.Root.Path(KeepDir(d.Name)),
	}
	if d.StateFile != "" {
		defer func() { _ = rt.Root.Remove(d.StateFile) }()
		var last []byte
		loop.OnApplied = func(res Result, err error) {
			var b []byte
			if k := keptOf(res); k != nil {
				b, _ = json.Marshal(k)
			}
			if !bytes.Equal(b, last) {
				werr := rt.Root.Remove(d.StateFile)
				if b != nil {
					_, werr = rt.Root.WriteFile(d.StateFile, append(b, '\n'), 0o600)
				}
				if werr != nil {
					rt.Log.Warn("writing the state file", "file", d.StateFile, "err", werr)
				} else {
					last = b
				}
			}
			if d.OnApplied != nil {
				d.OnApplied(res, err)
			}
		}
	}
	if cfg := d.Config(sp); cfg.Enabled {
		warn(sp)
		rt.Log.Info("starting", "pid", os.Getpid(), "lbs", Describe(cfg.LBs), "onegate", cfg.OneGate, "refresh", cfg.Refresh)
	} else {
		rt.Log.Info(d.Idle, "var", d.EnabledVar)
	}
	return loop.Run(ctx, sp)
}
