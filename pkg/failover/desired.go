package failover

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/hypercx/vrouter/pkg/fsroot"
)

// ErrInvalidContext is what Desired reports when the service refuses the
// context (its verbs exit 2): the service keeps what it applied last.
var ErrInvalidContext = errors.New("invalid context")

// Desired tells, for a data-plane service, what the context asks of it and
// whether the live state still matches. On a recontextualization the daemon
// re-applies only the running services whose desired state changed or whose
// live state drifted (a NIC that vanished and came back loses its
// forwarding sysctl though the context did not change): a context that
// changes nothing touches nothing, one that changes NAT4 touches one-nat4.
type Desired interface {
	// Digest summarises everything the service would apply.
	Digest(ctx context.Context, svc string) (string, error)
	// Drifted reports whether the live state differs from the context.
	Drifted(ctx context.Context, svc string) (bool, error)
}

// Binaries is the real Desired: it asks each service binary, so a service
// plugs in by being in the table. The digest is a hash of `render` (every
// iptables payload, file, sysctl and address the service would apply);
// drift is `status` exiting 3.
type Binaries struct {
	Root fsroot.Root
	// EnvFile is handed to the binaries (--env-file) when set.
	EnvFile string
	// Timeout bounds one call (default 30 s).
	Timeout time.Duration
}

// Digest runs `<svc> render` and hashes what it prints.
func (b Binaries) Digest(ctx context.Context, svc string) (string, error) {
	out, code, err := b.run(ctx, svc, "render")
	switch {
	case err != nil:
		return "", err
	case code == 2:
		return "", fmt.Errorf("%s render: %w: %s", svc, ErrInvalidContext, out)
	case code != 0:
		return "", fmt.Errorf("%s render: exit %d: %s", svc, code, out)
	}
	sum := sha256.Sum256([]byte(out))
	return hex.EncodeToString(sum[:]), nil
}

// Drifted runs `<svc> status`: exit 3 is drift.
func (b Binaries) Drifted(ctx context.Context, svc string) (bool, error) {
	out, code, err := b.run(ctx, svc, "status")
	switch {
	case err != nil:
		return false, err
	case code == 0:
		return false, nil
	case code == 3:
		return true, nil
	case code == 2:
		return false, fmt.Errorf("%s status: %w: %s", svc, ErrInvalidContext, lastLine(out))
	}
	return false, fmt.Errorf("%s status: exit %d: %s", svc, code, lastLine(out))
}

// run returns stdout (or, on failure, stderr) and the exit status. The
// binary gets no environment but PATH: the context comes from the file,
// as when OpenRC runs the service.
func (b Binaries) run(ctx context.Context, svc, verb string) (string, int, error) {
	if strings.ContainsAny(svc, "/ \t\n") || svc == "" {
		return "", 0, fmt.Errorf("invalid service name %q", svc)
	}
	timeout := b.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var args []string
	if b.Root != "" && b.Root != "/" {
		args = append(args, "--root", string(b.Root))
	}
	if b.EnvFile != "" {
		args = append(args, "--env-file", b.EnvFile)
	}
	cmd := exec.CommandContext(ctx, b.Root.Path("/usr/sbin/"+svc), append(args, verb)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), 0, nil
	case errors.As(err, &ee) && ctx.Err() == nil:
		return strings.TrimSpace(stderr.String()), ee.ExitCode(), nil
	}
	return "", 0, fmt.Errorf("running %s %s: %w", svc, verb, err)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// refresh re-applies a running service on a reconcile when its desired
// state changed (its digest differs from the one it last applied) or its
// live state drifted, in place (reload) when its script can, else by a
// restart. A context the service refuses leaves it as it is: it keeps what
// it applied last, and its own configure verb reported the error. The
// questions run under query; when the next transition cancels it, the
// service is left as it is.
func (d *Daemon) refresh(ctx, query context.Context, svc string) []op {
	if d.Desired == nil {
		if d.Scripts != nil && d.Scripts.CanReload(svc) {
			return []op{d.run(ctx, svc, "reload")}
		}
		return nil
	}
	sum, err := d.Desired.Digest(query, svc)
	if query.Err() != nil {
		return nil
	}
	if errors.Is(err, ErrInvalidContext) {
		d.Log.Error("the new context is invalid for this service; it keeps what it applied last", "service", svc, "err", err)
		return nil
	}
	if err != nil {
		d.Log.Warn("cannot tell what the service would apply; checking its live state", "service", svc, "err", err)
	}
	d.mu.Lock()
	last := d.applied[svc]
	d.mu.Unlock()
	why := "desired state changed"
	if err != nil || last == "" || last == sum {
		// Unchanged, or unknown (this daemon did not apply it): only a
		// drifted live state calls for a re-apply.
		drifted, derr := d.Desired.Drifted(query, svc)
		switch {
		case query.Err() != nil:
			return nil
		case errors.Is(derr, ErrInvalidContext):
			return nil
		case derr != nil && err == nil:
			d.Log.Warn("cannot compare the live state; leaving the service as it is", "service", svc, "err", derr)
			return nil
		case derr != nil:
			why = "desired and live state unknown"
		case !drifted:
			if err == nil {
				d.mu.Lock()
				d.applied[svc] = sum
				d.mu.Unlock()
			}
			d.Log.Debug("unchanged", "service", svc)
			return nil
		default:
			why = "live state drifted"
		}
	}
	verb := "restart"
	if d.Scripts != nil && d.Scripts.CanReload(svc) {
		verb = "reload"
	}
	o := d.run(ctx, svc, verb)
	o.why = why
	return []op{o}
}

// track remembers what a service applied after a successful start,
// restart or reload, and forgets it when it stops.
func (d *Daemon) track(ctx context.Context, svc, verb string, err error) {
	if d.Desired == nil {
		return
	}
	if verb == "stop" || err != nil {
		d.mu.Lock()
		delete(d.applied, svc)
		d.mu.Unlock()
		return
	}
	// Asked after the service applied, so the service is never delayed; a
	// context that changed in between is a reconcile of its own.
	sum, derr := d.Desired.Digest(ctx, svc)
	d.mu.Lock()
	defer d.mu.Unlock()
	if derr != nil {
		delete(d.applied, svc)
		return
	}
	d.applied[svc] = sum
}
