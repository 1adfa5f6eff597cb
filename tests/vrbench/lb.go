package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

const lbBenchToken = "bench-lb-token"

// lbBenchContext is the router's context with the static servers of LB0
// (one per VM index given) and OneGate refreshed every second.
func lbBenchContext(gate string, servers ...int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `export ETH0_IP="203.0.113.1"
export ETH0_MASK="255.255.255.0"
export ETH1_IP="10.0.0.1"
export ETH1_MASK="255.255.255.0"
export VROUTER_ID="3"
export VMID="10"
export ONEGATE_ENDPOINT="%s"
export TOKENTXT="%s"
export ONEAPP_VNF_HAPROXY_ENABLED="YES"
export ONEAPP_VNF_HAPROXY_ONEGATE_ENABLED="YES"
export ONEAPP_VNF_HAPROXY_REFRESH_RATE="1"
export ONEAPP_VNF_HAPROXY_LB0_IP="<ETH0_EP0>"
export ONEAPP_VNF_HAPROXY_LB0_PORT="80"
`, gate, lbBenchToken)
	for j, i := range servers {
		fmt.Fprintf(&b, "export ONEAPP_VNF_HAPROXY_LB0_SERVER%d_HOST=\"%s\"\nexport ONEAPP_VNF_HAPROXY_LB0_SERVER%d_PORT=\"8080\"\n", j, lab.VMIP(i), j)
	}
	return b.String()
}

// lbBenchVM is backend VM 14's document, publishing itself for LB0 or not.
func lbBenchVM(publish bool) []byte {
	attrs := ""
	if publish {
		attrs = `"ONEGATE_HAPROXY_LB0_IP": "<ETH0_EP0>", "ONEGATE_HAPROXY_LB0_PORT": "80",
			"ONEGATE_HAPROXY_LB0_SERVER_HOST": "10.0.0.14", "ONEGATE_HAPROXY_LB0_SERVER_PORT": "8080"`
	}
	return []byte(`{"VM": {"ID": "14", "NAME": "vm-14", "STATE": "3", "LCM_STATE": "3", "USER_TEMPLATE": {` + attrs + `},
		"TEMPLATE": {"CONTEXT": {"BACKEND": "YES"}, "NIC": [{"NIC_ID": "0", "NETWORK_ID": "1", "IP": "10.0.0.14"}]}}}`)
}

var loadSummary = regexp.MustCompile(`ok=(\d+) failed=(\d+) names=(\S*) until=(\d+)`)

// benchLB measures one-haproxy through OpenRC in a router instance, with
// three backend VMs and the OneGate simulator: the failed requests of a
// steady load across 100 backend-set changes in a row (each a new context
// and a reload, each waited for until haproxy runs it), and the time from a
// backend VM publishing itself in OneGate to the first connection reaching
// it (refresh interval 1 s).
func benchLB(b *bench) error {
	l := b.lab
	inet, err := l.Host("lbinet")
	if err != nil {
		return err
	}
	r, err := l.Router("lbvr")
	if err != nil {
		return err
	}
	priv, err := l.Segment("lbpriv")
	if err != nil {
		return err
	}
	steps := []func() error{
		func() error { return l.Link(inet, "eth0", r, "eth0") },
		func() error { return lab.Addr(inet, "eth0", "203.0.113.100/24") },
		func() error { return lab.Addr(r, "eth0", "203.0.113.1/24") },
		func() error { return priv.Attach(r, "eth1", "10.0.0.1/24") },
	}
	for i := 0; i < 3; i++ {
		i := i
		steps = append(steps, func() error {
			vm, err := l.Host("lbvm" + strconv.Itoa(i+1))
			if err != nil {
				return err
			}
			if err := priv.Attach(vm, "eth0", lab.VMIP(i)+"/24"); err != nil {
				return err
			}
			if _, err := lab.Run(context.Background(), vm, "ip", "route", "add", "default", "via", "10.0.0.1"); err != nil {
				return err
			}
			_, err = l.Start(vm, "backend", "ready", lab.Bin("nettool"), "serve", "--tcp", ":8080", "--name", "vm"+strconv.Itoa(i+1))
			return err
		})
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	fixtures, err := os.MkdirTemp(l.Dir, "lb-onegate-")
	if err != nil {
		return err
	}
	for name, doc := range map[string]string{
		"vrouter": `{"VROUTER": {"ID": "3", "NAME": "vr-bench", "VMS": {"ID": ["10"]}, "TEMPLATE": {"NIC": [{"NIC_ID": "0", "NETWORK_ID": "0"}, {"NIC_ID": "1", "NETWORK_ID": "1"}]}}}`,
		"vnet-0":  `{"VNET": {"ID": "0", "NAME": "public", "AR_POOL": {"AR": [{"AR_ID": "0", "TYPE": "IP4", "IP": "203.0.113.1", "SIZE": "10", "LEASES": {"LEASE": [{"IP": "203.0.113.1", "VM": "10"}]}}]}}}`,
		"vnet-1": `{"VNET": {"ID": "1", "NAME": "private", "AR_POOL": {"AR": [{"AR_ID": "0", "TYPE": "IP4", "IP": "10.0.0.1", "SIZE": "100", "LEASES": {"LEASE": [
			{"IP": "10.0.0.1", "VM": "10"}, {"IP": "10.0.0.12", "VM": "12"}, {"IP": "10.0.0.13", "VM": "13"}, {"IP": "10.0.0.14", "VM": "14"}]}}]}}}`,
		"vm-14": string(lbBenchVM(false)),
	} {
		if err := os.WriteFile(filepath.Join(fixtures, name+".json"), []byte(doc), 0o644); err != nil {
			return err
		}
	}
	gate, err := sim.Start(l, inet, "203.0.113.100:5030", lbBenchToken, fixtures)
	if err != nil {
		return err
	}
	if err := r.Install("one-haproxy"); err != nil {
		return err
	}
	// applied waits until haproxy runs LB0 with exactly the given backends.
	applied := func(timeout time.Duration, vms ...int) error {
		return lab.Eventually(timeout, 5*time.Millisecond, func() error {
			cfg, err := r.ReadFile("/run/one-haproxy/applied.cfg")
			if err != nil {
				return err
			}
			if n := strings.Count(string(cfg), "\n    server "); n != len(vms) {
				return fmt.Errorf("haproxy runs %d servers, want %d", n, len(vms))
			}
			for _, i := range vms {
				if !strings.Contains(string(cfg), " "+lab.VMIP(i)+":8080 ") {
					return fmt.Errorf("haproxy does not run %s yet", lab.VMIP(i))
				}
			}
			return nil
		})
	}
	setContext := func(servers ...int) error {
		return r.WriteFile("/run/one-context/one_env", []byte(lbBenchContext(gate.URL, servers...)), 0o400)
	}
	if err := setContext(0, 1); err != nil {
		return err
	}
	if out, err := r.RC("one-haproxy", "start"); err != nil {
		return fmt.Errorf("one-haproxy start: %v\n%s", err, out)
	}
	if err := applied(20*time.Second, 0, 1); err != nil {
		return err
	}

	// 100 backend-set changes under a steady load.
	sets := [][]int{{0, 1, 2}, {1, 2}, {0, 2}, {0, 1}}
	load, err := l.Start(inet, "load", "ready", lab.Bin("nettool"), "load", "203.0.113.1:80", "--conns", "4")
	if err != nil {
		return err
	}
	const changes = 100
	var each []time.Duration
	start := time.Now()
	for i := 0; i < changes; i++ {
		set := sets[i%len(sets)]
		t0 := time.Now()
		if err := setContext(set...); err != nil {
			return err
		}
		if out, err := r.RC("one-haproxy", "reload"); err != nil {
			return fmt.Errorf("change %d: one-haproxy reload: %v\n%s", i+1, err, out)
		}
		if err := applied(20*time.Second, set...); err != nil {
			return fmt.Errorf("change %d: %w", i+1, err)
		}
		each = append(each, time.Since(t0))
	}
	took := time.Since(start)
	load.Stop()
	m := loadSummary.FindStringSubmatch(load.Output())
	if m == nil {
		return fmt.Errorf("no load summary:\n%s", load.Output())
	}
	ok, _ := strconv.Atoi(m[1])
	failed, _ := strconv.Atoi(m[2])
	b.add("HAProxy: failed requests over 100 backend-set changes under load", "0",
		fmt.Sprintf("%d of %d (%.0f connections/s, changes %s apart)", failed, ok+failed, float64(ok+failed)/took.Seconds(), ms(took/changes)),
		failed == 0 && ok > 0)
	med, lo, hi := stats(each)
	b.add("HAProxy: context reload to haproxy running the new backends", "(informational)", spread(med, lo, hi), true)

	// A backend VM publishes itself in OneGate: time to the first
	// connection it receives (REFRESH_RATE 1 s).
	if err := setContext(0, 1); err != nil {
		return err
	}
	if _, err := r.RC("one-haproxy", "reload"); err != nil {
		return err
	}
	if err := applied(20*time.Second, 0, 1); err != nil {
		return err
	}
	// Twice the usual runs: the wait for the next refresh is spread over a
	// whole interval, and the maximum is the figure.
	var lats []time.Duration
	for i := 0; i < 2*b.runs+1; i++ {
		watch, err := l.Start(inet, "watch", "ready", lab.Bin("nettool"), "load", "203.0.113.1:80", "--conns", "2", "--until", "vm3", "--duration", "15s")
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := gate.WriteDocument("vm-14", lbBenchVM(true)); err != nil {
			return err
		}
		if err := watch.Wait(); err != nil {
			return fmt.Errorf("load: %v\n%s", err, watch.Output())
		}
		m := loadSummary.FindStringSubmatch(watch.Output())
		if m == nil || m[4] == "0" {
			return fmt.Errorf("vm3 never answered:\n%s", watch.Output())
		}
		at, _ := strconv.ParseInt(m[4], 10, 64)
		lats = append(lats, time.Unix(0, at).Sub(t0))
		if err := gate.WriteDocument("vm-14", lbBenchVM(false)); err != nil {
			return err
		}
		if err := applied(20*time.Second, 0, 1); err != nil {
			return err
		}
		// Start the next run at a random point of the refresh cycle.
		time.Sleep(time.Duration(137*(i+1)%1000) * time.Millisecond)
	}
	med, lo, hi = stats(lats)
	b.add("HAProxy: OneGate backend change to traffic reaching it (refresh 1 s)", "<= 1500 ms (refresh + 0.5 s)",
		spread(med, lo, hi), hi <= 1500*time.Millisecond)
	return nil
}
