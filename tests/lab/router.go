package lab

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Router is a router instance: a network namespace plus a private mount
// namespace (overlays on /etc, /usr, /var; tmpfs /run with OpenRC's state)
// and its own PID namespace, whose init (the anchor) reaps what is
// orphaned inside at once, as the appliance's init does. (Orphans of the
// machine's namespace go to its init, which may reap late: a stopped
// daemon's supervisor then lingers as a zombie and `supervise-daemon
// --stop`, which waits for it to go, takes seconds.)
type Router struct {
	*Namespace
	lab    *Lab
	anchor *exec.Cmd
	// unshared is closed once unshare, the anchor's parent, has reaped
	// the anchor and exited.
	unshared chan struct{}
	pid      int
	dir      string
	// mntns holds the instance's mount namespace open from the moment it
	// is made: processes are matched against it, never against whatever
	// /proc/<pid> names later (an anchor that died leaves its PID free for
	// any process of the machine, such as another test's), and an open
	// namespace keeps its identity (inode) to itself.
	mntns *os.File
}

// anchorScript mounts the instance's private view of the machine, then
// becomes the reaping init of its PID namespace ($2: nettool init). It runs
// in a fresh mount namespace (unshare --propagation private) as PID 1 of a
// fresh PID namespace with its own /proc, so none of it is visible outside.
const anchorScript = `set -e
for d in etc usr var; do
	mkdir -p "$1/upper/$d" "$1/work/$d"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$1/upper/$d,workdir=$1/work/$d" "/$d"
done
mount -t tmpfs tmpfs /run
mkdir -p /run/openrc /run/one-context /run/lock
for d in started starting stopping inactive wasinactive exclusive scheduled options daemons failed hotplugged tmp; do
	mkdir -p /run/openrc/$d
done
touch /run/openrc/softlevel
echo ready
exec "$2" init
`

// Router creates a router instance called role.
func (l *Lab) Router(role string) (*Router, error) {
	n, err := l.Host(role)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(l.Dir, role)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", n.name, "unshare", "--mount", "--propagation", "private",
		"--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c", anchorScript, "anchor", dir, Bin("nettool"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &Router{Namespace: n, lab: l, anchor: cmd, dir: dir, unshared: make(chan struct{})}
	l.mu.Lock()
	l.routers = append(l.routers, r)
	l.mu.Unlock()
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("anchor said %q", line)
		}
		ready <- err
		go func() { _ = cmd.Wait(); close(r.unshared) }()
	}()
	select {
	case err := <-ready:
		if err != nil {
			return nil, fmt.Errorf("starting router instance %s: %v: %s", role, err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("router instance %s did not come up: %s", role, stderr.String())
	}
	// The anchor is up (it said ready as PID 1 of the new namespaces): the
	// only child of unshare, which waits for it.
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	if f := strings.Fields(string(raw)); err != nil || len(f) != 1 {
		return nil, fmt.Errorf("router instance %s: no anchor under unshare (%q): %v", role, raw, err)
	} else if r.pid, err = strconv.Atoi(f[0]); err != nil {
		return nil, err
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", r.pid))
	if err != nil {
		return nil, fmt.Errorf("router instance %s: %w", role, err)
	}
	l.mu.Lock()
	r.mntns = f
	l.mu.Unlock()
	return r, nil
}

// PID is the anchor process (as the machine numbers it), whose namespaces
// commands enter.
func (r *Router) PID() int { return r.pid }

// EnterArgs is the command line prefix that runs a program inside the
// instance: its network, mount and PID namespaces. nsenter forks the
// program into the PID namespace and waits for it: to stop both, signal
// their process group.
func (r *Router) EnterArgs() []string {
	return []string{"nsenter", "-t", strconv.Itoa(r.pid), "-m", "-n", "-p", "--"}
}

// Command runs args inside the instance, in a process group of its own,
// which ctx's end kills whole (nsenter and the program it forked).
func (r *Router) Command(ctx context.Context, args ...string) *exec.Cmd {
	e := r.EnterArgs()
	cmd := exec.CommandContext(ctx, e[0], append(e[1:], args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Never a group whose leader was reaped: its ID may be another's.
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return err
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	return cmd
}

// Path is a path of the instance's file system, as seen from the machine.
func (r *Router) Path(p string) string { return filepath.Join("/proc", strconv.Itoa(r.pid), "root", p) }

// WriteFile writes a file inside the instance.
func (r *Router) WriteFile(p string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(r.Path(p)), 0o755); err != nil {
		return err
	}
	return os.WriteFile(r.Path(p), data, mode)
}

// ReadFile reads a file inside the instance.
func (r *Router) ReadFile(p string) ([]byte, error) { return os.ReadFile(r.Path(p)) }

// Install runs each binary's own `install` verb inside the instance, which
// puts it in /usr/sbin and its OpenRC scripts in /etc/init.d.
func (r *Router) Install(services ...string) error {
	for _, s := range services {
		if _, err := Run(context.Background(), r, Bin(s), "install"); err != nil {
			return err
		}
	}
	return nil
}

// RC runs `rc-service <svc> <verb>` inside the instance.
func (r *Router) RC(svc, verb string) (string, error) {
	return Run(context.Background(), r, "rc-service", svc, verb)
}

// close kills the anchor, which takes every process of the instance's PID
// namespace with it, and lets unshare reap it (killed at once with the
// rest, unshare would leave it a zombie for the machine's init); then it
// kills whatever else lives in the instance's mount namespace (nsenter
// processes), which unmounts its view.
func (r *Router) close() error {
	r.lab.mu.Lock()
	f := r.mntns
	r.mntns = nil
	r.lab.mu.Unlock()
	if f == nil {
		return nil
	}
	defer f.Close()
	target, err := f.Stat()
	if err != nil {
		return nil
	}
	if own, err := os.Stat("/proc/self/ns/mnt"); err != nil || os.SameFile(own, target) {
		return nil
	}
	select {
	case <-r.unshared:
	default:
		// Not reaped yet, so the PID is still the anchor's.
		if st, err := os.Stat(fmt.Sprintf("/proc/%d/ns/mnt", r.pid)); err == nil && os.SameFile(st, target) {
			_ = syscall.Kill(r.pid, syscall.SIGKILL)
		}
		select {
		case <-r.unshared:
		case <-time.After(5 * time.Second):
		}
	}
	killWhere(func(pid string) bool {
		st, err := os.Stat("/proc/" + pid + "/ns/mnt")
		return err == nil && os.SameFile(st, target)
	})
	return nil
}

// inInstance reports whether process pid lives in the instance's mount
// namespace.
func (r *Router) inInstance(pid string) bool {
	r.lab.mu.Lock()
	f := r.mntns
	r.lab.mu.Unlock()
	if f == nil {
		return false
	}
	target, err := f.Stat()
	if err != nil {
		return false
	}
	st, err := os.Stat("/proc/" + pid + "/ns/mnt")
	return err == nil && os.SameFile(st, target)
}
