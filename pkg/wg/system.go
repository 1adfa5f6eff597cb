package wg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hypercx/vrouter/pkg/fsroot"
)

// SocketDir is where wireguard-go puts its configuration sockets (and where
// wgctrl looks for them). It is machine-wide: two router instances on one
// machine need their own mount namespaces (device names are per network
// namespace, sockets are not).
const SocketDir = "/var/run/wireguard"

// GoLog is where wireguard-go's own messages go (under --root).
const GoLog = "/var/log/one-appliance/wireguard-go.log"

// WireGuardGo is the real Userspace: the wireguard-go binary of the
// distribution, run in the foreground in its own session so that it
// outlives one-wg (a oneshot), with its output appended to GoLog.
type WireGuardGo struct {
	Root fsroot.Root
	// Binary is the program ("wireguard-go" on the PATH when empty).
	Binary string
	// Timeout bounds the wait for its socket (default 5 s).
	Timeout time.Duration
}

// Start runs wireguard-go -f dev and waits for its socket.
func (w WireGuardGo) Start(ctx context.Context, dev string) (int, error) {
	bin := w.Binary
	if bin == "" {
		bin = "wireguard-go"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return 0, fmt.Errorf("%s not found (install the wireguard-go package): %w", bin, err)
	}
	logPath := w.Root.Path(GoLog)
	_ = os.MkdirAll(filepath.Dir(logPath), 0o750)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return 0, fmt.Errorf("opening %s: %w", logPath, err)
	}
	defer logf.Close()
	sock := filepath.Join(SocketDir, dev+".sock")
	// A socket left by a wireguard-go that was killed would make wgctrl
	// talk to nobody.
	_ = os.Remove(sock)
	cmd := exec.Command(path, "-f", dev)
	// Its own environment only: one-wg's may hold the context (tokens).
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "WG_PROCESS_FOREGROUND=1", "LOG_LEVEL=error"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timeout := w.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		// Ready when the socket accepts a connection: wireguard-go binds
		// (the file appears) before it listens, and a wgctrl call in
		// between is refused.
		if c, err := net.DialTimeout("unix", sock, 100*time.Millisecond); err == nil {
			c.Close()
			return cmd.Process.Pid, nil
		}
		select {
		case err := <-exited:
			return 0, fmt.Errorf("wireguard-go exited at once (%v); see %s", err, GoLog)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return 0, ctx.Err()
		case <-deadline.C:
			_ = cmd.Process.Kill()
			return 0, fmt.Errorf("wireguard-go did not open %s within %s; see %s", sock, timeout, GoLog)
		case <-tick.C:
		}
	}
}

// Alive reports whether pid is a wireguard-go that has not exited.
func (WireGuardGo) Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) state ...": comm may hold spaces and parentheses.
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || len(s) < end+3 {
		return false
	}
	return s[open+1:end] == "wireguard-go" && s[end+2] != 'Z'
}

// Stop ends wireguard-go pid: SIGTERM, then SIGKILL after 3 s.
func (w WireGuardGo) Stop(ctx context.Context, pid int, dev string) error {
	if w.Alive(pid) {
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signalling wireguard-go (pid %d): %w", pid, err)
		}
		deadline := time.Now().Add(3 * time.Second)
		for w.Alive(pid) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		if w.Alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for i := 0; i < 100 && w.Alive(pid); i++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	if w.Alive(pid) {
		return fmt.Errorf("wireguard-go (pid %d) does not end", pid)
	}
	if err := os.Remove(filepath.Join(SocketDir, dev+".sock")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the socket of %s: %w", dev, err)
	}
	return nil
}
