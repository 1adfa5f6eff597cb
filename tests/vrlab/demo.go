package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hypercx/vrouter/pkg/failover"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/tests/lab"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// services the demo installs in both router instances, each with its own
// `install` verb (implemented services only; each feature adds its own).
var services = []string{
	"one-failover",
	"one-router4",
	"one-nat4",
	"one-dns",
	"one-dhcp4v2",
	"one-wg",
	"one-haproxy",
	"one-sdnat4",
}

// steps run in order; each feature adds its own (a step_<feature>.go file
// and one line here). The failover step sits in the middle: the steps after
// it check their feature on the new master, with the old master back as
// backup.
var steps = []func(*world, *report) error{
	stepBoot,
	stepRouterNAT,
	stepRecontext,
	stepFailover,
	stepDNS,
	stepDHCP,
	stepWG,
	stepLB,
	stepSDNAT4,
	stepMemory,
}

// world is the demo network: the HA lab (two router instances vr1 and vr2
// on a public and a private segment, the internet host on the public one, a
// VM on the private one whose gateway is the private VIP).
type world struct {
	lab     *lab.Lab
	ha      *lab.HA
	inet    *lab.Namespace
	vm      *lab.Namespace
	routers []*lab.Router
	// shared is scripts/lab/demo.env, the part of the context every router
	// instance shares; each router's one_env is its own addresses and the
	// VIPs (lab.HA.Context) followed by it.
	shared string
	// gate is the cloud's OneGate (the simulator, on the internet host):
	// router i is VM 10+i of its virtual router.
	gate *sim.Process
}

// context is router i's one_env: what OpenNebula gives the VM (its
// addresses, the VIPs, its OneGate endpoint, token and VM ID), then the
// shared part.
func (w *world) context(i int) string {
	return w.ha.Context(i, fmt.Sprintf("export ONEGATE_ENDPOINT=%q\nexport TOKENTXT=%q\nexport VMID=\"%d\"\n", w.gate.URL, w.gate.Token, 10+i)+w.shared)
}

// master waits until exactly one router holds the private VIP and returns it.
func (w *world) master() (*lab.Router, error) { return w.ha.Master(20 * time.Second) }

// enabled lists the data-plane services the context enables that the demo
// installs: what one-failover runs on the master.
func (w *world) enabled() ([]string, error) {
	vars, _ := onecontext.ParseEnvFile([]byte(w.context(0)))
	spec, err := failover.FromContext(onecontext.New(vars))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range spec.Enabled() {
		for _, inst := range services {
			if s == inst {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// check is one line of the closing table.
type check struct {
	feature, what string
	took          time.Duration
	// figure, when set, is shown instead of took (a count, a size).
	figure string
	err    error
}

type report struct {
	checks []check
}

func (r *report) do(feature, what string, f func() error) error {
	start := time.Now()
	err := f()
	return r.add(feature, what, time.Since(start), err)
}

// measure is do for a check that measures its own figure (a failover
// time): the table shows that figure instead of how long the check took,
// and no figure when the check failed (nothing was measured).
func (r *report) measure(feature, what string, f func() (time.Duration, error)) error {
	d, err := f()
	if err != nil {
		d = 0
	}
	return r.add(feature, what, d, err)
}

// figure is do for a check whose result is a figure other than a time.
func (r *report) figure(feature, what string, f func() (string, error)) error {
	v, err := f()
	return r.addCheck(check{feature: feature, what: what, figure: v, err: err})
}

func (r *report) add(feature, what string, took time.Duration, err error) error {
	return r.addCheck(check{feature: feature, what: what, took: took, err: err})
}

func (r *report) addCheck(c check) error {
	feature, what, err := c.feature, c.what, c.err
	r.checks = append(r.checks, c)
	status := "ok"
	if err != nil {
		status = "FAILED: " + err.Error()
	}
	fmt.Printf("  %-8s %-62s %s\n", feature, what, status)
	return err
}

func (r *report) print() bool {
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tCHECK\tTIME / FIGURE\tRESULT")
	ok := true
	for _, c := range r.checks {
		res := "pass"
		if c.err != nil {
			res, ok = "FAIL", false
		}
		fig := c.took.Round(time.Millisecond).String()
		switch {
		case c.figure != "":
			fig = c.figure
		case c.took == 0:
			// A check that failed before it measured anything.
			fig = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.feature, c.what, fig, res)
	}
	tw.Flush()
	return ok
}

// all runs a list of checks, all of them, and returns the first error.
func (r *report) all(list []checkFunc) error {
	var first error
	for _, s := range list {
		if err := r.do(s.feature, s.what, s.f); err != nil && first == nil {
			first = err
		}
	}
	return first
}

type checkFunc struct {
	feature, what string
	f             func() error
}

func demo(verbose bool) (bool, error) {
	started := time.Now()
	if err := lab.Build(); err != nil {
		return false, err
	}
	l, err := lab.New("demo")
	if err != nil {
		return false, err
	}
	stop := l.CloseOnSignal()
	defer func() {
		stop()
		if err := l.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
		fmt.Println("lab removed: namespaces deleted, processes stopped")
	}()
	if verbose {
		l.Log = os.Stdout
	}
	fmt.Println("== building the HA lab: internet host, router instances vr1 and vr2 on the public and private segments, a VM")
	w, err := build(l)
	if err != nil {
		return false, err
	}
	r := &report{}
	for _, s := range steps {
		if err := s(w, r); err != nil && verbose {
			fmt.Println(err)
		}
	}
	ok := r.print()
	fmt.Printf("\ndemo took %s\n", time.Since(started).Round(100*time.Millisecond))
	return ok, nil
}

func build(l *lab.Lab) (*world, error) {
	shared, err := os.ReadFile(filepath.Join(lab.RepoRoot(), "scripts", "lab", "demo.env"))
	if err != nil {
		return nil, err
	}
	h, err := l.HA(2, 1)
	if err != nil {
		return nil, err
	}
	w := &world{lab: l, ha: h, inet: h.Inet, vm: h.VMs[0], routers: h.Routers, shared: string(shared)}
	if w.gate, err = sim.Start(l, w.inet, lab.InetAddr+":5030", "demo-onegate-token", ""); err != nil {
		return nil, err
	}
	if _, err := l.Start(w.inet, "inet server", "ready", lab.Bin("nettool"), "serve", "--tcp", ":7000", "--udp", ":7000", "--name", "internet-host"); err != nil {
		return nil, err
	}
	if _, err := l.Start(w.vm, "vm server", "ready", lab.Bin("nettool"), "serve", "--tcp", ":80", "--udp", ":80", "--tcp", ":22", "--name", "vm"); err != nil {
		return nil, err
	}
	return w, nil
}

// stepBoot installs every service in both routers with their own install
// verbs, and the appliance's driver and one-context hooks, and boots them as
// one-context does: the one_env, then its net-90 hook, which runs
// `configure` of every service, one-failover's first (it renders
// keepalived's configuration and starts keepalived and the one-failover
// daemon, which starts what the context enables once this router is
// master). Then it shows the election.
func stepBoot(w *world, r *report) error {
	fmt.Println("== boot: every service installed and configured in vr1 and vr2 (context: own addresses + VIPs + scripts/lab/demo.env)")
	enabled, err := w.enabled()
	if err != nil {
		return r.add("context", "scripts/lab/demo.env parses", 0, err)
	}
	var m, b *lab.Router
	list := []checkFunc{}
	for i, rt := range w.routers {
		list = append(list,
			checkFunc{"install", rt.Role + ": " + strings.Join(services, " ") + " install, the driver and one-context hooks", func() error {
				return rt.InstallAppliance(services...)
			}},
			checkFunc{"boot", rt.Role + ": one_env written, one-context's net-90 hook: configure of every service (one-failover first)", func() error {
				status, err := rt.Contextualize(w.context(i))
				if err == nil && status != "bootstrap_success" {
					err = fmt.Errorf("driver status %q", status)
				}
				return err
			}},
		)
	}
	list = append(list,
		checkFunc{"failover", "election: one master holds 10.0.0.1 and 203.0.113.1, the other none", func() error {
			var err error
			if m, err = w.master(); err != nil {
				return err
			}
			b = w.ha.Other(m)
			if !lab.HasAddr(m, "eth0", lab.PublicVIP) || lab.HasAddr(b, "eth0", lab.PublicVIP) || lab.HasAddr(b, "eth1", lab.PrivateVIP) {
				return fmt.Errorf("the VIPs are not on %s alone", m.Role)
			}
			fmt.Printf("           master %s: %s", m.Role, addrLine(m))
			fmt.Printf("           backup %s: %s", b.Role, addrLine(b))
			return nil
		}},
		checkFunc{"failover", "one-failover started the enabled services on the master only", func() error {
			if m == nil {
				return fmt.Errorf("no master")
			}
			if err := serving(m, enabled, true); err != nil {
				return err
			}
			fmt.Printf("           %s runs %s; %s runs none of them\n", m.Role, strings.Join(enabled, " "), b.Role)
			return serving(b, enabled, false)
		}},
		checkFunc{"failover", "rc-service keepalived ready (master) / standby (backup)", func() error {
			if m == nil {
				return fmt.Errorf("no master")
			}
			if out, err := m.RC("keepalived", "ready"); err != nil {
				return fmt.Errorf("%s: %v %s", m.Role, err, out)
			}
			if out, err := b.RC("keepalived", "standby"); err != nil {
				return fmt.Errorf("%s: %v %s", b.Role, err, out)
			}
			return nil
		}},
	)
	return r.all(list)
}

// addrLine is the IPv4 addresses of a router's NICs on one line.
func addrLine(rt *lab.Router) string {
	var parts []string
	for _, nic := range []string{"eth0", "eth1"} {
		out, _ := lab.Run(context.Background(), rt, "ip", "-4", "-o", "addr", "show", "dev", nic)
		var addrs []string
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			for i := 0; i+1 < len(f); i++ {
				if f[i] == "inet" {
					addrs = append(addrs, f[i+1])
				}
			}
		}
		parts = append(parts, nic+" "+strings.Join(addrs, " "))
	}
	return strings.Join(parts, ", ") + "\n"
}

// serving waits until every service of svcs is started on rt (want) or
// none is.
func serving(rt *lab.Router, svcs []string, want bool) error {
	return rt.WaitServices(20*time.Second, want, svcs...)
}

// stepRouterNAT checks Router4 and NAT4 as one-failover runs them on the
// master: traffic from the VM through the private VIP, port forwards on the
// public VIP, and the backup forwarding nothing.
func stepRouterNAT(w *world, r *report) error {
	fmt.Println("== Router4 + NAT4 on the master, through the VIPs")
	m, err := w.master()
	if err != nil {
		return r.add("nat4", "a master to check", 0, err)
	}
	b := w.ha.Other(m)
	return r.all([]checkFunc{
		{"nat4", "VM -> internet TCP via 10.0.0.1: the internet host sees the public VIP", func() error {
			return answer(w.vm, "tcp", lab.InetAddr+":7000", "peer="+lab.PublicVIP+":")
		}},
		{"nat4", "VM -> internet UDP via 10.0.0.1: the internet host sees the public VIP", func() error {
			return answer(w.vm, "udp", lab.InetAddr+":7000", "peer="+lab.PublicVIP+":")
		}},
		{"nat4", "internet -> 203.0.113.1:8080 (TCP, the VIP) reaches the VM's port 80", func() error {
			return answer(w.inet, "tcp", lab.PublicVIP+":8080", "name=vm", "local=10.0.0.12:80", "peer="+lab.InetAddr+":")
		}},
		{"nat4", "internet -> 203.0.113.1:8080 (UDP) reaches the VM's port 80", func() error {
			return answer(w.inet, "udp", lab.PublicVIP+":8080", "name=vm", "peer="+lab.InetAddr+":")
		}},
		{"nat4", "internet -> 203.0.113.1:2222 reaches the VM's port 22", func() error {
			return answer(w.inet, "tcp", lab.PublicVIP+":2222", "name=vm", "local=10.0.0.12:22")
		}},
		{"nat4", "master: rc-service one-nat4 restart, then the forward still works", func() error {
			if _, err := m.RC("one-nat4", "restart"); err != nil {
				return err
			}
			return answer(w.inet, "tcp", lab.PublicVIP+":8080", "name=vm")
		}},
		{"nat4", "master: one-nat4 status and one-failover status report no drift", func() error {
			for _, svc := range []string{"one-nat4", "one-router4", "one-failover"} {
				if out, err := lab.Run(context.Background(), m, svc, "status"); err != nil {
					return fmt.Errorf("%s status: %v\n%s", svc, err, out)
				}
			}
			return nil
		}},
		{"router4", "backup: no NAT4 chain, forwarding off (one-failover stopped them)", func() error {
			out, err := lab.Run(context.Background(), b, "iptables-save", "-t", "nat")
			if err != nil {
				return err
			}
			if strings.Contains(out, "NAT4") {
				return fmt.Errorf("NAT4 rules on the backup:\n%s", out)
			}
			fwd, err := lab.Run(context.Background(), b, "sysctl", "-n", "net.ipv4.conf.eth1.forwarding")
			if strings.TrimSpace(fwd) != "0" {
				return fmt.Errorf("eth1 forwarding on the backup is %q (%v)", fwd, err)
			}
			return nil
		}},
	})
}

// answer probes addr from h and checks the server's answer.
func answer(h lab.Host, proto, addr string, want ...string) error {
	var out string
	err := lab.Eventually(3*time.Second, 100*time.Millisecond, func() error {
		var err error
		out, err = lab.Run(context.Background(), h, lab.Bin("nettool"), "probe", proto, addr, "--timeout", "1s")
		return err
	})
	if err != nil {
		return err
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			return fmt.Errorf("answer %q lacks %q", strings.TrimSpace(out), w)
		}
	}
	return nil
}
