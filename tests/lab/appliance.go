package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// InstallAppliance installs the services given with their own install verb
// and the appliance's contextualization files from alpine/rootfs (the
// driver /etc/one-appliance/service and the one-context hooks), as the
// image build does. Services not given are not installed, and the driver
// skips them.
func (r *Router) InstallAppliance(services ...string) error {
	if err := r.Install(services...); err != nil {
		return err
	}
	src := filepath.Join(RepoRoot(), "alpine", "rootfs")
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		st, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return r.WriteFile("/"+rel, data, st.Mode().Perm())
	})
}

// Contextualize writes the instance's one_env and runs one-context's
// network-stage hook, /etc/one-context.d/net-90-service-appliance, as
// one-context does on a boot, a context change or a NIC attached or
// detached. It returns the driver's status (/etc/one-appliance/status).
func (r *Router) Contextualize(env string) (string, error) {
	if err := r.WriteFile("/run/one-context/one_env", []byte(env), 0o400); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := Run(ctx, r, "/etc/one-context.d/net-90-service-appliance")
	status, _ := r.ReadFile("/etc/one-appliance/status")
	if err != nil {
		log, _ := r.ReadFile("/var/log/one-appliance/configure.log")
		return strings.TrimSpace(string(status)), fmt.Errorf("%s: contextualization failed: %v\n--- configure.log:\n%s", r.Role, err, TailLines(string(log), 30))
	}
	return strings.TrimSpace(string(status)), nil
}

// Contextualize contextualizes every router at once (env(i) is router i's
// one_env), as OpenNebula updates the instances of a virtual router
// together, and returns when every driver is done; an error when one failed
// or did not end with bootstrap_success.
func (h *HA) Contextualize(env func(i int) string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(h.Routers))
	for i, r := range h.Routers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, err := r.Contextualize(env(i))
			if err == nil && status != "bootstrap_success" {
				err = fmt.Errorf("%s: status %q after the contextualization", r.Role, status)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// WaitServices waits until every one of svcs is started in the instance
// (started true) or none is (false), as rc-service status says.
func (r *Router) WaitServices(timeout time.Duration, started bool, svcs ...string) error {
	return Eventually(timeout, 100*time.Millisecond, func() error {
		for _, s := range svcs {
			if st := r.ServiceState(s); (st == "started") != started {
				return fmt.Errorf("%s: %s is %s", r.Role, s, st)
			}
		}
		return nil
	})
}

// TailFile is the last n lines of one of the instance's files, headed
// with its name (for failure messages).
func (r *Router) TailFile(path string, n int) string {
	b, _ := r.ReadFile(path)
	return fmt.Sprintf("--- %s %s:\n%s\n", r.Role, path, TailLines(string(b), n))
}

// LogLines returns the lines of one of the instance's files that contain
// every one of words.
func (r *Router) LogLines(path string, words ...string) []string {
	b, _ := r.ReadFile(path)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		ok := l != ""
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// KernelState is what the router's kernel holds that the services change:
// the iptables rules (counters and comments aside), the addresses, the
// per-NIC IPv4 settings and forwarding.
type KernelState struct {
	Rules, Addrs, Sysctls string
}

var (
	counters   = regexp.MustCompile(`\[\d+:\d+\]`)
	addrVolat  = regexp.MustCompile(`\s+valid_lft \S+ preferred_lft \S+`)
	sysctlKeys = regexp.MustCompile(`^net\.ipv4\.(ip_forward|conf\.[^.]+\.(forwarding|rp_filter|arp_ignore|arp_announce|proxy_arp|send_redirects|accept_redirects))$`)
)

// Kernel reads the router's kernel state.
func (r *Router) Kernel() (KernelState, error) {
	var k KernelState
	rules, err := Run(context.Background(), r, "iptables-save")
	if err != nil {
		return k, err
	}
	var keep []string
	for _, l := range strings.Split(rules, "\n") {
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		keep = append(keep, counters.ReplaceAllString(l, ""))
	}
	k.Rules = strings.Join(keep, "\n")
	addrs, err := Run(context.Background(), r, "ip", "-4", "-o", "addr", "show")
	if err != nil {
		return k, err
	}
	k.Addrs = addrVolat.ReplaceAllString(addrs, "")
	out, err := Run(context.Background(), r, "sysctl", "-a", "-r", `^net\.ipv4\.`)
	if err != nil {
		return k, err
	}
	var ss []string
	for _, l := range strings.Split(out, "\n") {
		key, _, _ := strings.Cut(l, " = ")
		if sysctlKeys.MatchString(key) {
			ss = append(ss, l)
		}
	}
	sort.Strings(ss)
	k.Sysctls = strings.Join(ss, "\n")
	return k, nil
}

// Diff lists what differs between two kernel states, line by line.
func (k KernelState) Diff(other KernelState) []string {
	var out []string
	for _, p := range []struct{ name, a, b string }{{"iptables", k.Rules, other.Rules}, {"addr", k.Addrs, other.Addrs}, {"sysctl", k.Sysctls, other.Sysctls}} {
		out = append(out, lineDiff(p.name, p.a, p.b)...)
	}
	return out
}

func lineDiff(name, a, b string) []string {
	count := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		count[l]--
	}
	var out []string
	for l, n := range count {
		switch {
		case n > 0:
			out = append(out, name+" - "+l)
		case n < 0:
			out = append(out, name+" + "+l)
		}
	}
	sort.Strings(out)
	return out
}

// Starts identifies every start of the instance's OpenRC services: for
// each started service, the time OpenRC marked it started (a restart, or a
// stop and start, changes it), and the PIDs of its supervised daemon.
func (r *Router) Starts() map[string]string {
	out := map[string]string{}
	dir := r.Path("/run/openrc/started")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		st, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		id := st.ModTime().Format(time.RFC3339Nano)
		if ino, ok := st.Sys().(*syscall.Stat_t); ok {
			id += " ino " + strconv.FormatUint(ino.Ino, 10)
		}
		out[e.Name()] = id
	}
	pids := map[string][]int{}
	for _, comm := range []string{"keepalived", "one-failover", "unbound", "one-dhcp4v2", "conntrackd", "haproxy", "wireguard-go", "one-sdnat4", "one-lvs", "one-haproxy"} {
		pids[comm] = r.daemonPIDs(comm)
	}
	// A daemon's child between fork and exec still runs the daemon's
	// binary (one-failover forks rc-service every few seconds): only the
	// processes that still run it a moment later count.
	time.Sleep(50 * time.Millisecond)
	for comm, first := range pids {
		again := r.daemonPIDs(comm)
		var stable []int
		for _, p := range first {
			if slices.Contains(again, p) {
				stable = append(stable, p)
			}
		}
		if len(stable) > 0 {
			out["pid:"+comm] = fmt.Sprint(stable)
		}
	}
	return out
}

// daemonPIDs are the instance's processes running the binary called name
// (an init script run by its shebang also bears the service's name, but
// runs a shell).
func (r *Router) daemonPIDs(name string) []int {
	var out []int
	for _, pid := range r.PIDs(name) {
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && filepath.Base(exe) == name {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}

// ChangedStarts lists the services whose start identity differs.
func ChangedStarts(before, after map[string]string) []string {
	var out []string
	for k, v := range before {
		if after[k] != v {
			out = append(out, fmt.Sprintf("%s: %s -> %s", k, v, after[k]))
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			out = append(out, fmt.Sprintf("%s: new %s", k, v))
		}
	}
	sort.Strings(out)
	return out
}

// TailLines is the last n lines of s.
func TailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Upper is where the instance keeps what it changed under p (/etc, /usr or
// /var): its overlay's upper layer, as seen from the machine. A file the
// instance deleted shows there as a whiteout (a character device).
func (r *Router) Upper(p string) string { return filepath.Join(r.dir, "upper", p) }

// FailoverLogFile is one-failover's log in a router instance.
const FailoverLogFile = "/var/log/one-appliance/one-failover.log"

var logTime = regexp.MustCompile(`^time=(\S+) `)

// FailoverLines returns the instance's one-failover log lines containing
// every one of words, written at or after since.
func (r *Router) FailoverLines(since time.Time, words ...string) []string {
	return r.LogLinesSince(FailoverLogFile, since, words...)
}

// LogLinesSince returns the lines of one of the instance's log files
// (slog's text format) containing every one of words, written at or after
// since.
func (r *Router) LogLinesSince(path string, since time.Time, words ...string) []string {
	var out []string
	for _, l := range r.LogLines(path, words...) {
		m := logTime.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if ts, err := time.Parse(time.RFC3339Nano, m[1]); err == nil && !ts.Before(since) {
			out = append(out, l)
		}
	}
	return out
}

// DaemonRSS returns the resident size in kB of every long-running one-*
// process of the instance (the binaries of /usr/sbin, not their init
// scripts), by name.
func (r *Router) DaemonRSS() map[string]int {
	out := map[string]int{}
	for _, name := range []string{"one-failover", "one-sdnat4", "one-lvs", "one-haproxy", "one-dns", "one-dhcp4v2", "one-wg", "one-router4", "one-nat4"} {
		for _, pid := range r.daemonPIDs(name) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
					if kb, err := strconv.Atoi(f[1]); err == nil {
						out[name] += kb
					}
				}
			}
		}
	}
	return out
}
