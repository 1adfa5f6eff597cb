package main

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// recontextServices run on both routers of the recontext group.
var recontextServices = []string{"one-failover", "one-router4", "one-nat4", "one-dns", "one-dhcp4v2"}

const recontextShared = `export VROUTER_ID="1"
export VROUTER_KEEPALIVED_ID="40"
export ONEAPP_VNF_ROUTER4_ENABLED="YES"
export ONEAPP_VNF_NAT4_ENABLED="YES"
export ONEAPP_VNF_NAT4_INTERFACES_OUT="eth0"
export ONEAPP_VNF_NAT4_PORT_FWD0="<ETH0_VIP0>:8080:10.0.0.12:80"
export ONEAPP_VNF_DNS_ENABLED="YES"
export ONEAPP_VNF_DNS_INTERFACES="eth1"
export ONEAPP_VNF_DNS_USE_ROOTSERVERS="NO"
export ONEAPP_VNF_DHCP4_ENABLED="YES"
export ONEAPP_VNF_DHCP4_INTERFACES="eth1"
`

// benchRecontext boots the HA appliance through one-context's hook and
// measures recontextualizations of both routers: with the same context
// (what changes: service starts, reloads, ruleset generations, addresses,
// sysctls; all targets 0) and with a change of NAT4's port forwards only
// (services touched, time until the kernel has it). It also reads the
// resident size of the long-running one-* daemons.
func benchRecontext(b *bench) error {
	h, err := b.lab.HA(2, 0)
	if err != nil {
		return err
	}
	env := make([]string, len(h.Routers))
	for i, r := range h.Routers {
		if err := r.InstallAppliance(recontextServices...); err != nil {
			return err
		}
		env[i] = h.Context(i, recontextShared)
	}
	contextualize := func(f func(i int) string) (time.Duration, error) {
		start := time.Now()
		for i := range h.Routers {
			env[i] = f(i)
		}
		if err := h.Contextualize(func(i int) string { return env[i] }); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	if _, err := contextualize(func(i int) string { return env[i] }); err != nil {
		return err
	}
	m, err := h.Master(30 * time.Second)
	if err != nil {
		return err
	}
	if err := lab.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		for _, s := range recontextServices[1:] {
			if st := m.ServiceState(s); st != "started" {
				return fmt.Errorf("%s is %s", s, st)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // the boot's last reconcile

	// reconciled waits for the master's reconcile after since and returns
	// when it was logged.
	reconciled := func(since time.Time) (time.Time, error) {
		var at time.Time
		err := lab.Eventually(30*time.Second, 20*time.Millisecond, func() error {
			for _, l := range m.LogLines("/var/log/one-appliance/one-failover.log", "msg=applied", "action=reconcile") {
				if ts, ok := logTime(l); ok && ts.After(since) {
					at = ts
					return nil
				}
			}
			return fmt.Errorf("no reconcile")
		})
		return at, err
	}

	// Unchanged context.
	var drivers, settles []time.Duration
	restarts, reloads, gens, changes := 0, 0, 0, 0
	for run := 0; run < b.runs; run++ {
		var mons []*lab.Proc
		type snap struct {
			k      lab.KernelState
			starts map[string]string
		}
		before := map[*lab.Router]snap{}
		for _, r := range h.Routers {
			mon, err := b.lab.Start(r, "nft monitor", "", "stdbuf", "-oL", "nft", "monitor")
			if err != nil {
				return err
			}
			mons = append(mons, mon)
			k, err := r.Kernel()
			if err != nil {
				return err
			}
			before[r] = snap{k, r.Starts()}
		}
		time.Sleep(200 * time.Millisecond)
		since := time.Now()
		d, err := contextualize(func(i int) string { return env[i] })
		if err != nil {
			return err
		}
		at, err := reconciled(since)
		if err != nil {
			return err
		}
		drivers, settles = append(drivers, d), append(settles, at.Sub(since))
		time.Sleep(300 * time.Millisecond)
		for i, r := range h.Routers {
			mons[i].Stop()
			gens += strings.Count(mons[i].Output(), "new generation")
			k, err := r.Kernel()
			if err != nil {
				return err
			}
			changes += len(before[r].k.Diff(k))
			restarts += len(lab.ChangedStarts(before[r].starts, r.Starts()))
			reloads += len(serviceLines(r, since))
		}
	}
	med, lo, hi := stats(drivers)
	b.add("unchanged recontext: driver wall time (both routers at once)", "-", spread(med, lo, hi), true)
	med, lo, hi = stats(settles)
	b.add("unchanged recontext: until the master's reconcile is done", "-", spread(med, lo, hi), true)
	b.add(fmt.Sprintf("unchanged recontext: service starts/restarts, %d runs x 2 routers", b.runs), "0", fmt.Sprint(restarts), restarts == 0)
	b.add(fmt.Sprintf("unchanged recontext: service reloads, %d runs x 2 routers", b.runs), "0", fmt.Sprint(reloads), reloads == 0)
	b.add(fmt.Sprintf("unchanged recontext: ruleset generations, %d runs x 2 routers", b.runs), "0", fmt.Sprint(gens), gens == 0)
	b.add(fmt.Sprintf("unchanged recontext: rule, address and sysctl changes, %d runs", b.runs), "0", fmt.Sprint(changes), changes == 0)

	// NAT4's port forward changes, back and forth.
	var applied []time.Duration
	touched := map[string]int{}
	for run := 0; run < b.runs; run++ {
		port := 8081 + run%2
		since := time.Now()
		if _, err := contextualize(func(i int) string {
			return regexp.MustCompile(`:80[0-9]+:10\.0\.0\.12:80"`).ReplaceAllString(env[i], ":"+strconv.Itoa(port)+`:10.0.0.12:80"`)
		}); err != nil {
			return err
		}
		if err := lab.Eventually(30*time.Second, 10*time.Millisecond, func() error {
			k, err := m.Kernel()
			if err != nil {
				return err
			}
			if !strings.Contains(k.Rules, "--dport "+strconv.Itoa(port)) {
				return fmt.Errorf("port %d not forwarded", port)
			}
			return nil
		}); err != nil {
			return err
		}
		applied = append(applied, time.Since(since))
		if _, err := reconciled(since); err != nil {
			return err
		}
		for _, r := range h.Routers {
			for _, s := range serviceLines(r, since) {
				touched[s]++
			}
		}
	}
	med, lo, hi = stats(applied)
	b.add("NAT4 port forward changed: contextualization to rule in the kernel", "-", spread(med, lo, hi), true)
	var t []string
	for s, n := range touched {
		t = append(t, fmt.Sprintf("%s x%d", s, n))
	}
	ok := len(touched) == 1 && touched["one-nat4 reload"] == b.runs
	b.add(fmt.Sprintf("NAT4 port forward changed: services touched, %d runs", b.runs), "one-nat4 reload alone", strings.Join(t, ", "), ok)

	// Resident size of the long-running one-* daemons on the master.
	total := 0
	var each []string
	for _, comm := range []string{"one-failover", "one-dhcp4v2"} {
		for _, pid := range m.PIDs(comm) {
			kb := rssKB(pid)
			total += kb
			each = append(each, fmt.Sprintf("%s %.1f MB", comm, float64(kb)/1024))
		}
	}
	b.add("resident size of the one-* daemons on the master ("+strings.Join(each, ", ")+")", "< 25 MB each (the original's Ruby daemons)", fmt.Sprintf("%.1f MB", float64(total)/1024), total > 0)
	return nil
}

var failoverTime = regexp.MustCompile(`^time=(\S+) `)

func logTime(l string) (time.Time, bool) {
	m := failoverTime.FindStringSubmatch(l)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, m[1])
	return t, err == nil
}

// serviceLines lists the "<service> <verb>" one-failover ran on r since.
func serviceLines(r *lab.Router, since time.Time) []string {
	re := regexp.MustCompile(`msg=service service=\S+ service=(\S+) verb=(\S+)`)
	var out []string
	for _, l := range r.LogLines("/var/log/one-appliance/one-failover.log", "msg=service ") {
		if ts, ok := logTime(l); ok && !ts.Before(since) {
			if m := re.FindStringSubmatch(l); m != nil {
				out = append(out, m[1]+" "+m[2])
			}
		}
	}
	return out
}

// rssKB is a process's resident set size in kB.
func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}
