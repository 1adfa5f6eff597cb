// Package lab builds throwaway networks of network namespaces for the kernel
// tests, the end-to-end tests and the demo: hosts, segments (a bridge each,
// in a switch namespace of the lab's own), direct links and router
// instances (a namespace plus a private mount namespace whose /etc, /usr and
// /var are copy-on-write overlays and /run a fresh tmpfs, so the real
// binaries are installed with their own `install` verb and the real OpenRC
// scripts run side by side without touching the machine; and a PID
// namespace whose init reaps orphans at once, as the appliance's does).
//
// Every name carries a random suffix; Close stops every process the lab
// started or that lives in its namespaces, by PID, then deletes the
// namespaces and temporary files. Nothing is sent outside the lab's
// namespaces.
package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Host is anything commands can run in.
type Host interface {
	// Netns is the name of the host's network namespace.
	Netns() string
	// Command builds a command that runs inside the host.
	Command(ctx context.Context, args ...string) *exec.Cmd
}

// Lab owns namespaces, processes and files; Close removes them all.
type Lab struct {
	ID  string
	Dir string // temporary directory
	Log io.Writer

	mu       sync.Mutex
	netns    []*Namespace
	routers  []*Router
	procs    []*Proc
	switchNS *Namespace
	segments int
}

// RepoRoot is the repository this package lives in.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Bin is the path of a built binary: the services in bin/, lab tools in bin/lab/.
func Bin(name string) string {
	if strings.HasPrefix(name, "one-") {
		return filepath.Join(RepoRoot(), "bin", name)
	}
	return filepath.Join(RepoRoot(), "bin", "lab", name)
}

// Build compiles the nine services into bin/ and the lab tools (every main
// package under tests/) into bin/lab/. Several test processes may build at
// once: each builds into its own directory and renames the binaries into
// place, so nobody ever runs a half-written one.
func Build() error {
	root := RepoRoot()
	tmp, err := os.MkdirTemp(filepath.Join(root), ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	tools, err := labTools(root)
	if err != nil {
		return err
	}
	for _, b := range []struct {
		dir  string
		args []string
	}{
		{"bin", []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(tmp, "bin") + "/", "./cmd/..."}},
		{"bin/lab", append([]string{"build", "-o", filepath.Join(tmp, "bin/lab") + "/"}, tools...)},
	} {
		cmd := exec.Command(goCommand(), b.args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(b.args, " "), err, out)
		}
		if err := os.MkdirAll(filepath.Join(root, b.dir), 0o755); err != nil {
			return err
		}
		ents, err := os.ReadDir(filepath.Join(tmp, b.dir))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			if err := os.Rename(filepath.Join(tmp, b.dir, e.Name()), filepath.Join(root, b.dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// goCommand is the go command: the one on PATH, else the one of the Go
// installation this binary was built with (`make demo GO=/usr/local/go/bin/go`
// runs the demo with a PATH that has no go).
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// labTools lists the main packages under tests/ (nettool, the OneGate
// simulator, the demo, the benchmarks, ...).
func labTools(root string) ([]string, error) {
	cmd := exec.Command(goCommand(), "list", "-f", "{{if eq .Name \"main\"}}{{.ImportPath}}{{end}}", "./tests/...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing lab tools: %w", err)
	}
	return strings.Fields(string(out)), nil
}

// CanRun reports why the lab cannot run on this machine ("" when it can).
func CanRun() string {
	if os.Geteuid() != 0 {
		return "needs root to create network namespaces"
	}
	for _, t := range []string{"ip", "iptables-restore", "iptables-save", "nsenter", "unshare"} {
		if _, err := exec.LookPath(t); err != nil {
			return "needs " + t + " (scripts/install-deps.sh installs it)"
		}
	}
	return ""
}

// New creates an empty lab.
func New(prefix string) (*Lab, error) {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := prefix + hex.EncodeToString(b)
	Sweep(os.Stderr)
	dir, err := os.MkdirTemp("", "vrlab-"+id+"-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return nil, err
	}
	return &Lab{ID: id, Dir: dir, Log: io.Discard}, nil
}

// ownerFile, in a lab's directory, holds the PID of the process that made
// the lab.
const ownerFile = "owner"

// Sweep removes what labs whose process died without closing them left
// behind (a `go test` killed at its timeout, a SIGKILLed demo): the
// processes in their namespaces, by PID, the namespaces, and their
// directories. A lab whose owner is alive is never touched. Every new lab
// sweeps first; it says on w what it removed.
func Sweep(w io.Writer) {
	owners, _ := filepath.Glob(filepath.Join(os.TempDir(), "vrlab-*", ownerFile))
	for _, f := range owners {
		b, err := os.ReadFile(f)
		pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || perr != nil || pid <= 0 || alive(pid) {
			continue
		}
		dir := filepath.Dir(f)
		// vrlab-<id>-<random>: the ID is everything up to the last dash.
		base := strings.TrimPrefix(filepath.Base(dir), "vrlab-")
		id := base[:max(strings.LastIndex(base, "-"), 0)]
		if id == "" {
			continue
		}
		ents, _ := os.ReadDir("/run/netns")
		var removed []string
		for _, e := range ents {
			if name := e.Name(); strings.HasPrefix(name, "vrl-"+id+"-") {
				killNetns(name)
				if exec.Command("ip", "netns", "del", name).Run() == nil {
					removed = append(removed, name)
				}
			}
		}
		_ = os.RemoveAll(dir)
		fmt.Fprintf(w, "lab: removed lab %s left behind by process %d (no longer running): %d namespaces, %s\n", id, pid, len(removed), dir)
	}
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (l *Lab) logf(format string, args ...any) { fmt.Fprintf(l.Log, format+"\n", args...) }

// Namespace is a plain network namespace (a host of the lab).
type Namespace struct {
	name string
	Role string
}

// Netns returns the namespace name.
func (n *Namespace) Netns() string { return n.name }

// Command runs args inside the namespace with `ip netns exec`.
func (n *Namespace) Command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name}, args...)...)
}

// Host creates a namespace with lo up, rp_filter off and IPv6 off (no DAD
// delays), named after the lab and role.
func (l *Lab) Host(role string) (*Namespace, error) {
	n := &Namespace{name: "vrl-" + l.ID + "-" + role, Role: role}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", n.name, err, out)
	}
	l.mu.Lock()
	l.netns = append(l.netns, n)
	l.mu.Unlock()
	if err := Sh(context.Background(), n, `ip link set lo up
sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1`); err != nil {
		return nil, err
	}
	return n, nil
}

// Run runs args in h and returns stdout; the error carries stderr.
func Run(ctx context.Context, h Host, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := h.Command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s in %s: %v: %s%s", strings.Join(args, " "), h.Netns(), err, errb.String(), out.String())
	}
	return out.String(), nil
}

// Sh runs a shell script (the lab's own, never a context value) in h.
func Sh(ctx context.Context, h Host, script string) error {
	_, err := Run(ctx, h, "sh", "-ec", script)
	return err
}

// MustRun is Run that fails the test (or panics in the demo) on error.
func MustRun(t interface {
	Helper()
	Fatalf(string, ...any)
}, h Host, args ...string) string {
	t.Helper()
	out, err := Run(context.Background(), h, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// Link connects a and b with a veth pair named aIf in a and bIf in b, up.
func (l *Lab) Link(a Host, aIf string, b Host, bIf string) error {
	if out, err := exec.Command("ip", "link", "add", aIf, "netns", a.Netns(), "type", "veth", "peer", "name", bIf, "netns", b.Netns()).CombinedOutput(); err != nil {
		return fmt.Errorf("linking %s:%s-%s:%s: %v: %s", a.Netns(), aIf, b.Netns(), bIf, err, out)
	}
	if _, err := Run(context.Background(), a, "ip", "link", "set", aIf, "up"); err != nil {
		return err
	}
	_, err := Run(context.Background(), b, "ip", "link", "set", bIf, "up")
	return err
}

// Addr adds addresses (CIDR) to ifname in h.
func Addr(h Host, ifname string, cidrs ...string) error {
	for _, c := range cidrs {
		if _, err := Run(context.Background(), h, "ip", "addr", "add", c, "dev", ifname); err != nil {
			return err
		}
	}
	return nil
}

// Segment is a shared L2 network: a bridge in the lab's switch namespace.
type Segment struct {
	lab    *Lab
	Name   string
	bridge string
	ports  int
}

// Segment creates a bridge. Bridged traffic does not go through iptables.
func (l *Lab) Segment(name string) (*Segment, error) {
	l.mu.Lock()
	sw := l.switchNS
	l.segments++
	idx := l.segments
	l.mu.Unlock()
	if sw == nil {
		var err error
		if sw, err = l.Host("sw"); err != nil {
			return nil, err
		}
		_ = Sh(context.Background(), sw, `for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e "$f" ] && echo 0 > "$f"; done; true`)
		l.mu.Lock()
		l.switchNS = sw
		l.mu.Unlock()
	}
	s := &Segment{lab: l, Name: name, bridge: "br" + strconv.Itoa(idx)}
	if err := Sh(context.Background(), sw, "ip link add "+s.bridge+" type bridge && ip link set "+s.bridge+" up"); err != nil {
		return nil, err
	}
	return s, nil
}

// Attach plugs h into the segment as ifname with the given addresses.
func (s *Segment) Attach(h Host, ifname string, cidrs ...string) error {
	s.lab.mu.Lock()
	s.ports++
	port := fmt.Sprintf("%sp%d", s.bridge, s.ports)
	sw := s.lab.switchNS
	s.lab.mu.Unlock()
	if err := s.lab.Link(sw, port, h, ifname); err != nil {
		return err
	}
	if _, err := Run(context.Background(), sw, "ip", "link", "set", port, "master", s.bridge); err != nil {
		return err
	}
	return Addr(h, ifname, cidrs...)
}

// Switch is the namespace holding the segment's bridge.
func (s *Segment) Switch() *Namespace { return s.lab.switchNS }

// Proc is a background process started by the lab.
type Proc struct {
	Cmd  *exec.Cmd
	Name string
	out  *syncBuffer
	done chan struct{}
	err  error
}

// Output is what the process printed so far (stdout and stderr).
func (p *Proc) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to end.
func (p *Proc) Wait() error { <-p.done; return p.err }

// Stop kills the process (by PID) and waits for it: SIGTERM, SIGKILL 3 s
// later. A process run inside a router instance is signalled with its
// process group, which holds the program nsenter forked.
func (p *Proc) Stop() {
	if p.Cmd.Process == nil || p.Exited() {
		return
	}
	group := p.Cmd.SysProcAttr != nil && p.Cmd.SysProcAttr.Setpgid
	switch {
	case !group:
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	case p.Cmd.Process.Signal(syscall.Signal(0)) == nil:
		// The leader is not reaped: the group ID is still ours.
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		if group {
			// Still not done: a member holds its output open, which
			// keeps the group ID from being reused.
			_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		} else {
			_ = p.Cmd.Process.Kill()
		}
		<-p.done
	}
}

// Start runs args in h in the background; if ready is non-empty it waits
// until the output contains it.
func (l *Lab) Start(h Host, name, ready string, args ...string) (*Proc, error) {
	cmd := h.Command(context.Background(), args...)
	p := &Proc{Cmd: cmd, Name: name, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	go func() { p.err = cmd.Wait(); close(p.done) }()
	if ready != "" {
		err := Eventually(10*time.Second, 20*time.Millisecond, func() error {
			if strings.Contains(p.out.String(), ready) {
				return nil
			}
			if p.Exited() {
				return fmt.Errorf("%s exited: %v: %s", name, p.err, p.out.String())
			}
			return fmt.Errorf("%s not ready: %s", name, p.out.String())
		})
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// Eventually retries f until it succeeds or timeout passes.
func Eventually(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

// Close stops every process of the lab (started by it, or living in its
// namespaces), deletes the namespaces and the temporary directory.
func (l *Lab) Close() error {
	l.mu.Lock()
	procs, routers, nss := l.procs, l.routers, l.netns
	l.procs, l.routers, l.netns = nil, nil, nil
	l.mu.Unlock()
	for _, p := range procs {
		p.Stop()
	}
	var errs []error
	for _, r := range routers {
		if err := r.close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range nss {
		killNetns(n.name)
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", n.name, err, out))
		}
	}
	if err := os.RemoveAll(l.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// CloseOnSignal makes SIGINT and SIGTERM (Ctrl-C during the demo or the
// benchmarks) close the lab before the process exits, so an interrupted run
// leaves no namespace, process or file behind. stop ends it (once the lab
// is closed the normal way).
func (l *Lab) CloseOnSignal() (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			fmt.Fprintf(os.Stderr, "%v: removing the lab\n", s)
			if err := l.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "cleanup:", err)
			}
			code := 130
			if s == syscall.SIGTERM {
				code = 143
			}
			os.Exit(code)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// killNetns kills, by PID, every process whose network namespace is name.
func killNetns(name string) {
	target, err := os.Stat("/run/netns/" + name)
	if err != nil {
		return
	}
	if own, err := os.Stat("/proc/self/ns/net"); err != nil || os.SameFile(own, target) {
		return
	}
	killWhere(func(pid string) bool {
		st, err := os.Stat("/proc/" + pid + "/ns/net")
		return err == nil && os.SameFile(st, target)
	})
}

// killWhere SIGKILLs every process matching and waits for them to go.
func killWhere(match func(pid string) bool) {
	for round := 0; round < 50; round++ {
		ents, _ := os.ReadDir("/proc")
		found := false
		for _, e := range ents {
			pid := e.Name()
			if pid[0] < '0' || pid[0] > '9' || !match(pid) {
				continue
			}
			if n, err := strconv.Atoi(pid); err == nil && n != os.Getpid() {
				found = true
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
		if !found {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
