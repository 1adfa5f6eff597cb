package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// steps run in order; each feature adds its own (a step_<feature>.go file
// and one line here).
var steps = []func(*world, *report) error{
	stepRouterNAT,
	stepDNS,
}

// world is the demo network.
type world struct {
	lab    *lab.Lab
	inet   *lab.Namespace
	vm     *lab.Namespace
	router *lab.Router
}

// check is one line of the closing table.
type check struct {
	feature, what string
	took          time.Duration
	err           error
}

type report struct {
	checks []check
}

func (r *report) do(feature, what string, f func() error) error {
	start := time.Now()
	err := f()
	c := check{feature: feature, what: what, took: time.Since(start), err: err}
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
	fmt.Fprintln(tw, "FEATURE\tCHECK\tTIME\tRESULT")
	ok := true
	for _, c := range r.checks {
		res := "pass"
		if c.err != nil {
			res, ok = "FAIL", false
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.feature, c.what, c.took.Round(time.Millisecond), res)
	}
	tw.Flush()
	return ok
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
	defer func() {
		if err := l.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
		fmt.Println("lab removed: namespaces deleted, processes stopped")
	}()
	if verbose {
		l.Log = os.Stdout
	}
	fmt.Println("== building the lab: internet host, router instance, VM")
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
	w := &world{lab: l}
	var err error
	steps := []func() error{
		func() error { w.inet, err = l.Host("inet"); return err },
		func() error { w.vm, err = l.Host("vm"); return err },
		func() error { w.router, err = l.Router("vr1"); return err },
		func() error { return l.Link(w.inet, "eth0", w.router, "eth0") },
		func() error { return lab.Addr(w.inet, "eth0", "203.0.113.100/24") },
		func() error { return lab.Addr(w.router, "eth0", "203.0.113.1/24") },
		func() error { return l.Link(w.vm, "eth0", w.router, "eth1") },
		func() error { return lab.Addr(w.vm, "eth0", "10.0.0.12/24") },
		func() error { return lab.Addr(w.router, "eth1", "10.0.0.1/24") },
		func() error {
			_, err := lab.Run(context.Background(), w.vm, "ip", "route", "add", "default", "via", "10.0.0.1")
			return err
		},
		func() error {
			_, err := l.Start(w.inet, "inet server", "ready", lab.Bin("nettool"), "serve", "--tcp", ":7000", "--udp", ":7000", "--name", "internet-host")
			return err
		},
		func() error {
			_, err := l.Start(w.vm, "vm server", "ready", lab.Bin("nettool"), "serve", "--tcp", ":80", "--udp", ":80", "--tcp", ":22", "--name", "vm")
			return err
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// stepRouterNAT installs Router4 and NAT4 in the router instance with their
// own install verbs, loads the example context and drives them through
// OpenRC, then checks the traffic.
func stepRouterNAT(w *world, r *report) error {
	fmt.Println("== Router4 + NAT4 through OpenRC (context: scripts/lab/demo.env)")
	ctxFile, err := os.ReadFile(filepath.Join(lab.RepoRoot(), "scripts", "lab", "demo.env"))
	if err != nil {
		return err
	}
	steps := []struct {
		feature, what string
		f             func() error
	}{
		{"install", "one-router4 install && one-nat4 install (image build step)", func() error {
			return w.router.Install("one-router4", "one-nat4")
		}},
		{"context", "/run/one-context/one_env written from scripts/lab/demo.env", func() error {
			return w.router.WriteFile("/run/one-context/one_env", ctxFile, 0o400)
		}},
		{"router4", "rc-service one-router4 start", func() error { _, err := w.router.RC("one-router4", "start"); return err }},
		{"nat4", "rc-service one-nat4 start", func() error { _, err := w.router.RC("one-nat4", "start"); return err }},
		{"nat4", "VM -> internet TCP: the internet host sees 203.0.113.1", func() error {
			return answer(w.vm, "tcp", "203.0.113.100:7000", "peer=203.0.113.1:")
		}},
		{"nat4", "VM -> internet UDP: the internet host sees 203.0.113.1", func() error {
			return answer(w.vm, "udp", "203.0.113.100:7000", "peer=203.0.113.1:")
		}},
		{"nat4", "internet -> 203.0.113.1:8080 (TCP) reaches the VM's port 80", func() error {
			return answer(w.inet, "tcp", "203.0.113.1:8080", "name=vm", "local=10.0.0.12:80", "peer=203.0.113.100:")
		}},
		{"nat4", "internet -> 203.0.113.1:8080 (UDP) reaches the VM's port 80", func() error {
			return answer(w.inet, "udp", "203.0.113.1:8080", "name=vm", "peer=203.0.113.100:")
		}},
		{"nat4", "internet -> 203.0.113.1:2222 reaches the VM's port 22", func() error {
			return answer(w.inet, "tcp", "203.0.113.1:2222", "name=vm", "local=10.0.0.12:22")
		}},
		{"nat4", "rc-service one-nat4 restart, then the forward still works", func() error {
			if _, err := w.router.RC("one-nat4", "restart"); err != nil {
				return err
			}
			return answer(w.inet, "tcp", "203.0.113.1:8080", "name=vm")
		}},
		{"nat4", "one-nat4 status: live rules match the context", func() error {
			_, err := lab.Run(context.Background(), w.router, "one-nat4", "status")
			return err
		}},
		{"nat4", "rc-service one-nat4 stop removes every NAT4 chain", func() error {
			if _, err := w.router.RC("one-nat4", "stop"); err != nil {
				return err
			}
			out, err := lab.Run(context.Background(), w.router, "iptables-save", "-t", "nat")
			if err != nil {
				return err
			}
			if strings.Contains(out, "NAT4") {
				return fmt.Errorf("NAT4 rules left:\n%s", out)
			}
			return nil
		}},
		{"router4", "rc-service one-router4 stop turns forwarding off", func() error {
			if _, err := w.router.RC("one-router4", "stop"); err != nil {
				return err
			}
			out, err := lab.Run(context.Background(), w.router, "sysctl", "-n", "net.ipv4.conf.eth1.forwarding")
			if strings.TrimSpace(out) != "0" {
				return fmt.Errorf("eth1 forwarding is %q (%v)", out, err)
			}
			return nil
		}},
	}
	var first error
	for _, s := range steps {
		if err := r.do(s.feature, s.what, s.f); err != nil && first == nil {
			first = err
		}
	}
	return first
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
