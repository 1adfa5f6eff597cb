// Package openrc is the service-manager seam: it starts, stops and queries
// the appliance's OpenRC services through rc-service (argv only, never a
// shell), and offers a stateful fake for tests. one-failover starts and stops
// the data-plane services through it; a one-* service manages its
// counterpart daemon (haproxy, unbound, keepalived) through it.
package openrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hypercx/vrouter/pkg/fsroot"
)

// State of a service as OpenRC reports it.
type State string

const (
	Started  State = "started"
	Stopped  State = "stopped"
	Starting State = "starting"
	Stopping State = "stopping"
	Crashed  State = "crashed"
	Inactive State = "inactive"
	// Missing: no init script is installed for the service.
	Missing State = "missing"
	Unknown State = "unknown"
)

// Services is what callers need of the service manager.
type Services interface {
	// Run runs `rc-service <name> <verb>` (start, stop, restart, reload,
	// or any extra command of the script).
	Run(ctx context.Context, name, verb string, flags ...string) error
	// Status reports the state of a service.
	Status(ctx context.Context, name string) (State, error)
	// Installed reports whether an init script exists for name.
	Installed(name string) bool
}

// RC is the real OpenRC, with init scripts under Root/etc/init.d.
type RC struct {
	Root fsroot.Root
	// Command is the rc-service binary ("rc-service" when empty).
	Command string
}

func (r RC) cmd() string {
	if r.Command == "" {
		return "rc-service"
	}
	return r.Command
}

// Installed reports whether /etc/init.d/<name> exists.
func (r RC) Installed(name string) bool { return r.Root.Exists("/etc/init.d/" + name) }

// Run runs rc-service; a failure carries the command's output.
//
// "restart" is `rc-service X stop` then `rc-service X start`, never
// `rc-service X restart`: OpenRC's restart notes every service of the
// machine that is started when it begins and starts again each of them
// that is stopped when it ends, so a service another process stopped
// meanwhile (one-failover quiescing a router while keepalived restarts)
// would come back behind that process's back.
func (r RC) Run(ctx context.Context, name, verb string, flags ...string) error {
	if strings.ContainsAny(name, "/ \t\n") || name == "" {
		return fmt.Errorf("invalid service name %q", name)
	}
	if verb == "restart" {
		if err := r.Run(ctx, name, "stop", flags...); err != nil {
			return err
		}
		return r.Run(ctx, name, "start", flags...)
	}
	args := append(append([]string{}, flags...), name, verb)
	var out bytes.Buffer
	if err := wait(ctx, run(ctx, &out, r.cmd(), args...)); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("rc-service %s: %w (its processes were killed): %s", strings.Join(args, " "), ctx.Err(), strings.TrimSpace(out.String()))
		}
		return fmt.Errorf("rc-service %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// run runs name in a process group of its own, and a cancelled or
// timed-out ctx kills the whole group: the script's start() and whatever
// it runs in the foreground (a one-* binary waiting on a lock) die with
// it. Killing rc-service alone would leave them running, to finish later
// behind the caller's back (a start applying rules on a router that has
// become backup meanwhile). OpenRC then still says "starting", and
// `rc-service X stop` runs the script's stop(), which takes down whatever
// the start had already set up.
//
// The group is signalled only while its leader is unreaped: run waits for
// the exit with WNOWAIT, stops the killer, and only then reaps, so the
// process group ID can never have been reused by another process when the
// signal goes out (exec.Cmd's Cancel may run after Wait has reaped).
func run(ctx context.Context, out *bytes.Buffer, name string, args ...string) error {
	c := exec.Command(name, args...)
	c.Stdout, c.Stderr = out, out
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Daemons a start launched in the background may keep the output
	// pipe open; do not wait for them once the script is done.
	c.WaitDelay = 2 * time.Second
	if err := c.Start(); err != nil {
		return err
	}
	pid := c.Process.Pid
	exited, killerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(killerDone)
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		case <-exited:
		}
	}()
	var info unix.Siginfo
	for {
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != unix.EINTR {
			break
		}
	}
	close(exited)
	<-killerDone
	return c.Wait()
}

// wait reads the error of a command: one that exited well but left a
// process holding its output open past WaitDelay succeeded.
func wait(ctx context.Context, err error) error {
	if errors.Is(err, exec.ErrWaitDelay) && ctx.Err() == nil {
		return nil
	}
	return err
}

// Status parses `rc-service <name> status` ("* status: started").
func (r RC) Status(ctx context.Context, name string) (State, error) {
	if !r.Installed(name) {
		return Missing, nil
	}
	var out bytes.Buffer
	err := wait(ctx, run(ctx, &out, r.cmd(), name, "status"))
	if st := ParseStatus(out.String()); st != Unknown {
		return st, nil
	}
	if err != nil {
		return Unknown, fmt.Errorf("rc-service %s status: %w: %s", name, err, strings.TrimSpace(out.String()))
	}
	return Unknown, nil
}

// ParseStatus reads the state from rc-service status output. A script's
// own status() may say why after the state ("crashed (unbound is not
// running)"): the first word is the state.
func ParseStatus(out string) State {
	for _, l := range strings.Split(out, "\n") {
		if _, v, ok := strings.Cut(l, "status:"); ok {
			// A script's own status() may say why: "crashed (unbound is
			// not running)".
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			switch st := State(f[0]); st {
			case Started, Stopped, Starting, Stopping, Crashed, Inactive:
				return st
			}
		}
	}
	return Unknown
}

// Fake is a stateful service manager for tests: services start stopped,
// start/restart make them started, stop makes them stopped. Every call is
// recorded as "<name> <verb>".
type Fake struct {
	mu        sync.Mutex
	States    map[string]State
	Scripts   map[string]bool // installed scripts; nil means every name is installed
	Calls     []string
	FailStart map[string]error // Run(name, "start"/"restart") fails with this
}

// NewFake returns a fake with the given installed scripts.
func NewFake(installed ...string) *Fake {
	f := &Fake{States: map[string]State{}, FailStart: map[string]error{}}
	if len(installed) > 0 {
		f.Scripts = map[string]bool{}
		for _, s := range installed {
			f.Scripts[s] = true
		}
	}
	return f
}

// Installed reports whether the fake has the script.
func (f *Fake) Installed(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Scripts == nil || f.Scripts[name]
}

// Run records the call and changes state.
func (f *Fake) Run(_ context.Context, name, verb string, _ ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, name+" "+verb)
	if f.Scripts != nil && !f.Scripts[name] {
		return fmt.Errorf("rc-service %s %s: service does not exist", name, verb)
	}
	switch verb {
	case "start", "restart":
		if err := f.FailStart[name]; err != nil {
			f.States[name] = Stopped
			return err
		}
		f.States[name] = Started
	case "stop":
		f.States[name] = Stopped
	}
	return nil
}

// Status returns the recorded state (stopped when never started).
func (f *Fake) Status(_ context.Context, name string) (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Scripts != nil && !f.Scripts[name] {
		return Missing, nil
	}
	if st, ok := f.States[name]; ok {
		return st, nil
	}
	return Stopped, nil
}

// Reset forgets the recorded calls.
func (f *Fake) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = nil
}
