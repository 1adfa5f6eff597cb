package haproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/openrc"
)

// HAProxyService is haproxy's OpenRC service.
const HAProxyService = "haproxy"

// AppliedFile is a copy of the configuration the running haproxy was last
// started or reloaded with (haproxy.cfg then servers.cfg): configure writes
// the files without touching haproxy, so they alone do not say what runs.
const AppliedFile = "/run/one-haproxy/applied.cfg"

// ErrStoppedByHand: haproxy ran the applied configuration and was stopped
// by someone else; it is left stopped.
var ErrStoppedByHand = errors.New("haproxy was stopped behind one-haproxy's back; left stopped (rc-service one-haproxy restart starts it again)")

// Checker judges candidate files (haproxy -c).
type Checker func(ctx context.Context, main, servers string) error

// CheckExec is the real Checker: `haproxy -c -f <main> -f <servers>`.
func CheckExec(ctx context.Context, main, servers string) error {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return fmt.Errorf("checking haproxy configuration: haproxy is not installed: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	c := exec.CommandContext(ctx, bin, "-c", "-q", "-f", main, "-f", servers)
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return fmt.Errorf("haproxy -c: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Admin talks to haproxy's admin socket: one command, its whole answer.
type Admin interface {
	Command(ctx context.Context, cmd string) (string, error)
}

// Socket is the real Admin, a unix socket.
type Socket struct{ Path string }

// Command sends cmd and reads the answer (haproxy closes the connection
// after answering a non-interactive command).
func (s Socket) Command(ctx context.Context, cmd string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", s.Path)
	if err != nil {
		return "", err
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok || time.Until(deadline) > 5*time.Second {
		deadline = time.Now().Add(5 * time.Second)
	}
	_ = c.SetDeadline(deadline)
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// HAProxy drives the daemon: its files, its OpenRC service, its admin socket.
type HAProxy struct {
	Root  fsroot.Root
	RC    openrc.Services
	Check Checker
	// Admin is the workers' admin socket, Master the master CLI (nil: no
	// master CLI, reloads go through OpenRC).
	Admin, Master Admin
	// ReadyTimeout bounds the wait for haproxy to answer after a start or
	// a reload (default 10 s).
	ReadyTimeout time.Duration
}

// Action is what Apply did to haproxy.
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

// WriteConfig replaces haproxy.cfg and servers.cfg with d's once `haproxy -c`
// accepts the two together, and reports whether a file changed. A rejected
// configuration leaves the live files as they were.
func (h HAProxy) WriteConfig(ctx context.Context, d Desired) (bool, error) {
	liveMain, err1 := h.Root.ReadFile(MainFile)
	liveServers, err2 := h.Root.ReadFile(ServersFile)
	if err1 == nil && err2 == nil && bytes.Equal(liveMain, d.Main) && bytes.Equal(liveServers, d.Servers) {
		return false, nil
	}
	dir, err := os.MkdirTemp("", "haproxy-check-")
	if err != nil {
		return false, fmt.Errorf("checking haproxy configuration: %w", err)
	}
	defer os.RemoveAll(dir)
	main, servers := filepath.Join(dir, "haproxy.cfg"), filepath.Join(dir, "servers.cfg")
	if err := os.WriteFile(main, d.Main, 0o600); err != nil {
		return false, fmt.Errorf("checking haproxy configuration: %w", err)
	}
	if err := os.WriteFile(servers, d.Servers, 0o600); err != nil {
		return false, fmt.Errorf("checking haproxy configuration: %w", err)
	}
	if err := h.Check(ctx, main, servers); err != nil {
		msg := strings.ReplaceAll(strings.ReplaceAll(err.Error(), main, MainFile), servers, ServersFile)
		return false, fmt.Errorf("haproxy rejects the new configuration (the live files are unchanged): %s", msg)
	}
	changed := false
	for _, f := range []struct {
		path string
		data []byte
	}{{MainFile, d.Main}, {ServersFile, d.Servers}} {
		wrote, err := h.Root.WriteFile(f.path, f.data, FileMode)
		if err != nil {
			return changed, fmt.Errorf("writing haproxy configuration: %w", err)
		}
		changed = changed || wrote
	}
	return changed, nil
}

func applied(d Desired) []byte { return append(append([]byte{}, d.Main...), d.Servers...) }

// Apply writes the configuration and brings haproxy to it: started when it
// does not run, reloaded gracefully (the new workers take over the
// listening sockets, the old ones finish their connections, the servers'
// health is carried over) when it runs an older configuration, untouched
// when it runs this one. A running haproxy is recognised by its admin
// socket, and reloaded through its master socket, so an unchanged refresh
// and a reload cost no process start (rc-service is the fallback).
func (h HAProxy) Apply(ctx context.Context, d Desired) (Result, error) {
	res := Result{Action: ActionNone}
	if !h.RC.Installed(HAProxyService) {
		return res, fmt.Errorf("starting haproxy: no OpenRC script /etc/init.d/%s (run `one-haproxy install`)", HAProxyService)
	}
	changed, err := h.WriteConfig(ctx, d)
	if err != nil {
		return res, err
	}
	res.FileChanged = changed
	last, lastErr := h.Root.ReadFile(AppliedFile)
	oldPid, pidErr := h.workerPid(ctx)
	switch {
	case pidErr == nil && lastErr == nil && bytes.Equal(last, applied(d)):
		return res, nil
	case pidErr == nil:
		// Running an older configuration, or one started by someone else.
		res.Action = ActionReload
	default:
		st, err := h.RC.Status(ctx, HAProxyService)
		if err != nil {
			return res, fmt.Errorf("querying haproxy's state: %w", err)
		}
		switch {
		case st == openrc.Stopped && lastErr == nil:
			// It ran our configuration and someone stopped it: leave it
			// stopped, as one-failover does, and do not race the end of
			// their `rc-service haproxy stop` (OpenRC reports stopped
			// before it is done). one-haproxy's status says crashed, so
			// one-failover (or rc-service one-haproxy restart) brings it
			// back.
			return res, ErrStoppedByHand
		case st == openrc.Stopped:
			res.Action = ActionStart
		case st == openrc.Starting || st == openrc.Stopping:
			return res, fmt.Errorf("haproxy is %s; trying again at the next refresh", st)
		default:
			res.Action = ActionRestart
		}
		oldPid = 0
	}
	// Forget the applied configuration until haproxy runs the new one, so a
	// failure is retried by the next apply.
	if err := h.Root.Remove(AppliedFile); err != nil {
		return res, fmt.Errorf("removing %s: %w", AppliedFile, err)
	}
	if res.Action == ActionReload {
		h.saveState(ctx)
		if err := h.reload(ctx); err != nil {
			return res, err
		}
	} else if err := h.RC.Run(ctx, HAProxyService, string(res.Action)); err != nil {
		return res, fmt.Errorf("running haproxy %s: %w", res.Action, err)
	}
	if err := h.waitReady(ctx, oldPid); err != nil {
		return res, err
	}
	if _, err := h.Root.WriteFile(AppliedFile, applied(d), 0o600); err != nil {
		return res, fmt.Errorf("recording the applied configuration: %w", err)
	}
	return res, nil
}

// reload asks the master to load the configuration again (master CLI
// "reload", what SIGUSR2 does), or OpenRC when the master socket does not
// answer.
func (h HAProxy) reload(ctx context.Context) error {
	if h.Master != nil {
		mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := h.Master.Command(mctx, "reload")
		cancel()
		if err == nil {
			return nil
		}
	}
	if err := h.RC.Run(ctx, HAProxyService, "reload"); err != nil {
		return fmt.Errorf("running haproxy reload: %w", err)
	}
	return nil
}

// workerPid asks the running worker its PID ("show info").
func (h HAProxy) workerPid(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := h.Admin.Command(ctx, "show info")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pid: "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, errors.New("no Pid in show info")
}

// saveState dumps the servers' state where the next haproxy loads it
// (server-state-file), so a reload does not forget which servers are down.
// Without an answer the file is removed: stale health is worse than none.
func (h HAProxy) saveState(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := h.Admin.Command(ctx, "show servers state")
	if err != nil || !strings.HasPrefix(out, "1\n") {
		_ = h.Root.Remove(StateFile)
		return
	}
	if _, err := h.Root.WriteFile(StateFile, []byte(out), 0o600); err != nil {
		_ = h.Root.Remove(StateFile)
	}
}

// waitReady waits until haproxy answers on its admin socket, from a worker
// other than oldPid after a reload.
func (h HAProxy) waitReady(ctx context.Context, oldPid int) error {
	timeout := h.ReadyTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		pid, err := h.workerPid(ctx)
		if err == nil && pid != oldPid {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("worker %d still answers", pid)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for haproxy to run the new configuration (see /var/log/haproxy.log): %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop stops haproxy and empties servers.cfg (when haproxy.cfg exists), so a
// haproxy started by hand serves nothing. Idempotent; fine where haproxy is
// not even installed.
func (h HAProxy) Stop(ctx context.Context) error {
	var errs []error
	if err := h.Root.Remove(AppliedFile); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", AppliedFile, err))
	}
	if h.RC.Installed(HAProxyService) {
		st, err := h.RC.Status(ctx, HAProxyService)
		if err != nil || st != openrc.Stopped {
			if err := h.RC.Run(ctx, HAProxyService, "stop"); err != nil {
				errs = append(errs, fmt.Errorf("stopping haproxy: %w", err))
			}
		}
	}
	if h.Root.Exists(MainFile) {
		if _, err := h.Root.WriteFile(ServersFile, EmptyServers(), FileMode); err != nil {
			errs = append(errs, fmt.Errorf("emptying %s: %w", ServersFile, err))
		}
	}
	return errors.Join(errs...)
}

// Live is what Inspect finds.
type Live struct {
	State openrc.State
	// Files: haproxy.cfg and servers.cfg match; Running: haproxy runs
	// with the desired bytes; Answers: its admin socket answered.
	Files, Running, Answers bool
	// Servers are "backend/server STATE" lines from the admin socket.
	Servers []string
}

// Inspect looks at the live state against d without changing anything.
func (h HAProxy) Inspect(ctx context.Context, d Desired) (Live, error) {
	var l Live
	st, err := h.RC.Status(ctx, HAProxyService)
	if err != nil {
		return l, fmt.Errorf("querying haproxy's state: %w", err)
	}
	l.State = st
	m, err1 := h.Root.ReadFile(MainFile)
	s, err2 := h.Root.ReadFile(ServersFile)
	for _, err := range []error{err1, err2} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return l, fmt.Errorf("reading haproxy configuration: %w", err)
		}
	}
	l.Files = bytes.Equal(m, d.Main) && bytes.Equal(s, d.Servers)
	last, err := h.Root.ReadFile(AppliedFile)
	l.Running = st == openrc.Started && err == nil && bytes.Equal(last, applied(d))
	if st == openrc.Started {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if out, err := h.Admin.Command(ctx, "show servers state"); err == nil && strings.HasPrefix(out, "1\n") {
			l.Answers = true
			l.Servers = ServerStates(out)
		}
	}
	return l, nil
}

// ServerStates reads `show servers state` into "backend/server UP|DOWN|MAINT"
// lines.
func ServerStates(out string) []string {
	var res []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || strings.HasPrefix(line, "#") {
			continue
		}
		state := "DOWN"
		switch {
		case f[6] != "0":
			state = "MAINT"
		case f[5] == "2":
			state = "UP"
		case f[5] == "1" || f[5] == "3":
			state = "GOING"
		}
		res = append(res, f[1]+"/"+f[3]+" "+state)
	}
	return res
}
