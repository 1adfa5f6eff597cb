package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// lbDemoAddr is the second backend VM's address (VM 40 in OneGate).
const lbDemoAddr = "10.0.0.40"

// The demo's private network in OneGate (network 1 of the simulator's
// virtual router): the routers' leases, the VM's and the second backend VM's
// (VM 40, BACKEND=YES in its context).
const lbDemoVNet = `{"VNET": {"ID": "1", "NAME": "private", "VROUTERS": {"ID": "3"},
  "TEMPLATE": {"NETWORK_ADDRESS": "10.0.0.0", "NETWORK_MASK": "255.255.255.0", "GATEWAY": "10.0.0.1"},
  "AR_POOL": {"AR": [{"AR_ID": "0", "TYPE": "IP4", "IP": "10.0.0.1", "SIZE": "100", "LEASES": {"LEASE": [
    {"IP": "10.0.0.1", "VROUTER": "3"}, {"IP": "10.0.0.2", "VM": "10"}, {"IP": "10.0.0.3", "VM": "11"},
    {"IP": "10.0.0.12", "VM": "12"}, {"IP": "` + lbDemoAddr + `", "VM": "40"}]}}]}}}`

// lbDemoVM is VM 40's document; published, its user template says which
// LB it serves, as a start script on the VM would (onegate vm update).
func lbDemoVM(published bool) []byte {
	attrs := ""
	if published {
		attrs = `"ONEGATE_HAPROXY_LB0_IP": "<ETH0_EP0>", "ONEGATE_HAPROXY_LB0_PORT": "80",
      "ONEGATE_HAPROXY_LB0_SERVER_HOST": "` + lbDemoAddr + `", "ONEGATE_HAPROXY_LB0_SERVER_PORT": "80"`
	}
	return []byte(`{"VM": {"ID": "40", "NAME": "web-2", "STATE": "3", "LCM_STATE": "3", "USER_TEMPLATE": {` + attrs + `},
  "TEMPLATE": {"CONTEXT": {"NETWORK": "YES", "BACKEND": "YES", "TOKEN": "YES"},
    "NIC": [{"NIC_ID": "0", "NAME": "NIC0", "NETWORK": "private", "NETWORK_ID": "1", "IP": "` + lbDemoAddr + `", "MAC": "02:00:0a:00:00:28"}]}}}`)
}

// stepLB shows a load-balanced web service on the public VIP (HAProxy, as
// one-failover runs it on the master): the VM behind the router is its
// static backend; a second VM joins the private network and publishes
// itself through OneGate, and the router sends it connections (the table
// shows how long after it published); it withdraws, and gets none.
func stepLB(w *world, r *report) error {
	fmt.Println("== Load balancing (HAProxy) on the public VIP's port 80: a static backend and one published through OneGate")
	m, err := w.master()
	if err != nil {
		return r.add("lb", "a master to balance on", 0, err)
	}
	b := w.ha.Other(m)
	ctx := context.Background()
	vip := lab.PublicVIP + ":80"
	var vm2 *lab.Namespace
	// names makes n connections from the internet host and counts the
	// backends that answered.
	names := func(n int) (map[string]int, error) {
		seen := map[string]int{}
		for i := 0; i < n; i++ {
			out, err := lab.Run(ctx, w.inet, lab.Bin("nettool"), "probe", "tcp", vip, "--timeout", "1s")
			if err != nil {
				return seen, err
			}
			_, name, _ := strings.Cut(strings.TrimSpace(out), "name=")
			seen[name]++
		}
		return seen, nil
	}
	first := r.all([]checkFunc{
		{"lb", "internet -> 203.0.113.1:80: HAProxy on " + m.Role + " sends it to the VM (static backend)", func() error {
			return answer(w.inet, "tcp", vip, "name=vm", "local=10.0.0.12:80")
		}},
		{"lb", b.Role + " (backup): no haproxy running", func() error {
			if st := b.ServiceState("haproxy"); st == "started" || len(b.PIDs("haproxy")) > 0 {
				return fmt.Errorf("haproxy is %s on the backup", st)
			}
			return nil
		}},
		{"lb", "a VM web-2 (" + lbDemoAddr + ", BACKEND=YES) joins the private network", func() error {
			var err error
			if vm2, err = w.lab.Host("web2"); err != nil {
				return err
			}
			if err := w.ha.Private.Attach(vm2, "eth0", lbDemoAddr+"/24"); err != nil {
				return err
			}
			if _, err := lab.Run(ctx, vm2, "ip", "route", "add", "default", "via", lab.PrivateVIP); err != nil {
				return err
			}
			if _, err := w.lab.Start(vm2, "web-2 server", "ready", lab.Bin("nettool"), "serve", "--tcp", ":80", "--name", "web-2"); err != nil {
				return err
			}
			if err := w.gate.WriteDocument("vm-40", lbDemoVM(false)); err != nil {
				return err
			}
			return w.gate.WriteDocument("vnet-1", []byte(lbDemoVNet))
		}},
	})
	t0 := time.Now()
	if err := r.measure("lb", "web-2 publishes ONEGATE_HAPROXY_LB0_* in OneGate: first connection it gets", func() (time.Duration, error) {
		if vm2 == nil {
			return 0, fmt.Errorf("no web-2")
		}
		if err := w.gate.WriteDocument("vm-40", lbDemoVM(true)); err != nil {
			return 0, err
		}
		t0 = time.Now()
		err := lab.Eventually(20*time.Second, 0, func() error {
			out, err := lab.Run(ctx, w.inet, lab.Bin("nettool"), "probe", "tcp", vip, "--timeout", "1s")
			if err == nil && !strings.Contains(out, "name=web-2") {
				err = fmt.Errorf("answered by %q", strings.TrimSpace(out))
			}
			return err
		})
		return time.Since(t0), err
	}); err != nil && first == nil {
		first = err
	}
	err = r.all([]checkFunc{
		{"lb", "connections are balanced across the VM and web-2", func() error {
			seen, err := names(8)
			if err == nil && (seen["vm"] == 0 || seen["web-2"] == 0) {
				err = fmt.Errorf("answers %v", seen)
			}
			return err
		}},
		{"lb", m.Role + ": one-haproxy status: static and dynamic backends, no drift", func() error {
			out, err := lab.Run(ctx, m, "one-haproxy", "status")
			if err == nil && !strings.Contains(out, lbDemoAddr+":80") {
				err = fmt.Errorf("status does not show web-2:\n%s", out)
			}
			return err
		}},
		{"lb", "web-2 withdraws (attributes removed): after a refresh it gets no connection", func() error {
			if err := w.gate.WriteDocument("vm-40", lbDemoVM(false)); err != nil {
				return err
			}
			return lab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
				seen, err := names(6)
				if err == nil && seen["vm"] != 6 {
					err = fmt.Errorf("answers %v", seen)
				}
				return err
			})
		}},
	})
	if first == nil {
		first = err
	}
	return first
}
