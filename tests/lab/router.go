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
	"time"
)

// Router is a router instance: a network namespace plus a private mount
// namespace (overlays on /etc, /usr, /var; tmpfs /run with OpenRC's state),
// kept alive by an anchor process.
type Router struct {
	*Namespace
	lab    *Lab
	anchor *exec.Cmd
	pid    int
	dir    string
	// mntns holds the instance's mount namespace open from the moment it
	// is made: processes are matched against it, never against whatever
	// /proc/<pid> names later (an anchor that died leaves its PID free for
	// any process of the machine, such as another test's), and an open
	// namespace keeps its identity (inode) to itself.
	mntns *os.File
}

// anchorScript mounts the instance's private view of the machine. It runs in
// a fresh mount namespace (unshare --propagation private), so none of it is
// visible outside.
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
exec sleep infinity
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
	cmd := exec.Command("ip", "netns", "exec", n.name, "unshare", "--mount", "--propagation", "private", "sh", "-c", anchorScript, "anchor", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &Router{Namespace: n, lab: l, anchor: cmd, pid: cmd.Process.Pid, dir: dir}
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
		go func() { _ = cmd.Wait() }()
	}()
	select {
	case err := <-ready:
		if err != nil {
			return nil, fmt.Errorf("starting router instance %s: %v: %s", role, err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("router instance %s did not come up: %s", role, stderr.String())
	}
	// The anchor is up (it unshared before saying ready).
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", r.pid))
	if err != nil {
		return nil, fmt.Errorf("router instance %s: %w", role, err)
	}
	l.mu.Lock()
	r.mntns = f
	l.mu.Unlock()
	return r, nil
}

// PID is the anchor process, whose namespaces commands enter.
func (r *Router) PID() int { return r.pid }

// Command runs args inside the instance (its network and mount namespaces).
func (r *Router) Command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(r.pid), "-m", "-n", "--"}, args...)...)
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

// close kills every process of the instance's mount namespace (the anchor
// and whatever OpenRC started there), which unmounts its view.
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
