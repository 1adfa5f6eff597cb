package kernel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// lbTopology: a client on the public side (203.0.113.100, which also runs
// the OneGate simulator), the router (eth0 203.0.113.2, VIP 203.0.113.1;
// eth1 10.0.0.1) and three backend VMs on the private network (10.0.0.12,
// .13, .14) each answering on TCP 8080 with its name. VM 14 is the dynamic
// backend: it is on the router's network with BACKEND=YES, and publishes
// itself in OneGate when a test says so.
type lbTopology struct {
	lab     *lab.Lab
	inet    *lab.Namespace
	router  *lab.Router
	vms     []*lab.Namespace
	servers []*lab.Proc
	gate    *sim.Process
}

const lbToken = "lb-token-5f2a"

func newLBTopology(t *testing.T, services ...string) *lbTopology {
	t.Helper()
	l := needLab(t)
	for _, tool := range []string{"rc-service", "supervise-daemon"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("LB test skipped: needs %s (scripts/install-deps.sh installs it)", tool)
		}
	}
	d := &lbTopology{lab: l}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	d.inet, err = l.Host("inet")
	must(err)
	d.router, err = l.Router("router")
	must(err)
	must(l.Link(d.inet, "eth0", d.router, "eth0"))
	must(lab.Addr(d.inet, "eth0", "203.0.113.100/24"))
	must(lab.Addr(d.router, "eth0", "203.0.113.2/24"))
	priv, err := l.Segment("private")
	must(err)
	must(priv.Attach(d.router, "eth1", "10.0.0.1/24"))
	for i := 0; i < 3; i++ {
		vm, err := l.Host("vm" + strconv.Itoa(i+1))
		must(err)
		must(priv.Attach(vm, "eth0", lab.VMIP(i)+"/24"))
		lab.MustRun(t, vm, "ip", "route", "add", "default", "via", "10.0.0.1")
		p, err := l.Start(vm, "backend", "ready", lab.Bin("nettool"), "serve", "--tcp", ":8080", "--name", "vm"+strconv.Itoa(i+1))
		must(err)
		d.vms = append(d.vms, vm)
		d.servers = append(d.servers, p)
	}
	d.gate, err = sim.Start(l, d.inet, "203.0.113.100:5030", lbToken, lbFixtures(t))
	must(err)
	must(d.router.Install(services...))
	return d
}

// lbFixtures writes the OneGate documents of the topology: router 3 (VMs
// 10, 11) on networks 0 (public) and 1 (private, the backends' leases).
func lbFixtures(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	docs := map[string]string{
		"vrouter": `{"VROUTER": {"ID": "3", "NAME": "vr-lb", "VMS": {"ID": ["10", "11"]}, "TEMPLATE": {"NIC": [
			{"NIC_ID": "0", "NETWORK": "public", "NETWORK_ID": "0", "FLOATING_IP": "YES", "IP": "203.0.113.1"},
			{"NIC_ID": "1", "NETWORK": "private", "NETWORK_ID": "1"}]}}}`,
		"vnet-0": `{"VNET": {"ID": "0", "NAME": "public", "AR_POOL": {"AR": [{"AR_ID": "0", "TYPE": "IP4", "IP": "203.0.113.1", "SIZE": "100",
			"LEASES": {"LEASE": [{"IP": "203.0.113.1", "VROUTER": "3"}, {"IP": "203.0.113.2", "VM": "10"}]}}]}}}`,
		"vnet-1": `{"VNET": {"ID": "1", "NAME": "private", "AR_POOL": {"AR": [{"AR_ID": "0", "TYPE": "IP4", "IP": "10.0.0.1", "SIZE": "100",
			"LEASES": {"LEASE": [{"IP": "10.0.0.1", "VM": "10"}, {"IP": "10.0.0.12", "VM": "12"}, {"IP": "10.0.0.13", "VM": "13"}, {"IP": "10.0.0.14", "VM": "14"}]}}]}}}`,
		"vm-10": lbVM(10, ""),
		"vm-14": lbVM(14, ""),
	}
	for name, doc := range docs {
		if err := os.WriteFile(dir+"/"+name+".json", []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// lbVM is VM id's document with the given user template attributes (JSON
// members, without braces).
func lbVM(id int, attrs string) string {
	return fmt.Sprintf(`{"VM": {"ID": "%d", "NAME": "vm-%d", "STATE": "3", "LCM_STATE": "3", "USER_TEMPLATE": {%s},
		"TEMPLATE": {"CONTEXT": {"BACKEND": "YES", "TOKEN": "YES"}, "NIC": [{"NIC_ID": "0", "NAME": "NIC0", "NETWORK_ID": "1", "IP": "10.0.0.%d"}]}}}`, id, id, attrs, id)
}

// context is the router's one_env: its addresses, OneGate, and extra.
func (d *lbTopology) context(extra string) string {
	return `export ETH0_IP="203.0.113.2"
export ETH0_MASK="255.255.255.0"
export ETH0_VROUTER_IP="203.0.113.1"
export ETH1_IP="10.0.0.1"
export ETH1_MASK="255.255.255.0"
export VROUTER_ID="3"
export VMID="10"
export ONEGATE_ENDPOINT="` + d.gate.URL + `"
export TOKENTXT="` + lbToken + `"
` + extra
}

func (d *lbTopology) setContext(t *testing.T, env string) {
	t.Helper()
	if err := d.router.WriteFile("/run/one-context/one_env", []byte(env), 0o400); err != nil {
		t.Fatal(err)
	}
}

// probe connects from the client to addr and returns the backend's name
// ("" and an error when the connection fails).
func (d *lbTopology) probe(addr string) (string, error) {
	out, err := lab.Run(context.Background(), d.inet, lab.Bin("nettool"), "probe", "tcp", addr, "--timeout", "2s")
	if err != nil {
		return "", err
	}
	_, name, _ := strings.Cut(strings.TrimSpace(out), "name=")
	return name, nil
}

// names makes n connections and counts the answers per backend; every one
// must succeed.
func (d *lbTopology) names(n int, addr string) (map[string]int, error) {
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		name, err := d.probe(addr)
		if err != nil {
			return seen, fmt.Errorf("connection %d of %d failed: %w", i+1, n, err)
		}
		seen[name]++
	}
	return seen, nil
}

const haproxyContext = `export ONEAPP_VNF_HAPROXY_ENABLED="YES"
export ONEAPP_VNF_HAPROXY_ONEGATE_ENABLED="YES"
export ONEAPP_VNF_HAPROXY_REFRESH_RATE="1"
export ONEAPP_VNF_HAPROXY_LB0_IP="<ETH0_EP0>"
export ONEAPP_VNF_HAPROXY_LB0_PORT="80"
export ONEAPP_VNF_HAPROXY_LB0_CHECK_INTERVAL="0.5"
export ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST="10.0.0.12"
export ONEAPP_VNF_HAPROXY_LB0_SERVER0_PORT="8080"
export ONEAPP_VNF_HAPROXY_LB0_SERVER1_HOST="10.0.0.13"
export ONEAPP_VNF_HAPROXY_LB0_SERVER1_PORT="8080"
`

// TestHAProxy drives one-haproxy through OpenRC in a router instance: it
// starts while the router does not hold the LB's VIP yet and serves once the
// VIP arrives; balances connections across the two static backends; takes a
// dead backend out while traffic goes on; adds the backend a VM publishes in
// OneGate, then drops it when the VM withdraws; and stop stops haproxy.
func TestHAProxy(t *testing.T) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("HAProxy test skipped: needs haproxy (scripts/install-deps.sh installs it)")
	}
	d := newLBTopology(t, "one-haproxy")
	r := d.router
	d.setContext(t, d.context(haproxyContext))
	if out, err := r.RC("one-haproxy", "start"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	logs := func() string {
		b, _ := r.ReadFile("/var/log/one-appliance/one-haproxy.log")
		h, _ := r.ReadFile("/var/log/haproxy.log")
		return string(b) + "\n--- haproxy:\n" + string(h)
	}
	// haproxy runs although 203.0.113.1 is not on the router (a VIP the
	// other router holds): binds are transparent.
	if err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		if st := r.ServiceState("haproxy"); st != "started" {
			return fmt.Errorf("haproxy is %q", st)
		}
		_, err := r.ReadFile("/run/one-haproxy/applied.cfg")
		return err
	}); err != nil {
		t.Fatalf("%v\n%s", err, logs())
	}
	if _, err := d.probe("203.0.113.1:80"); err == nil {
		t.Fatal("the VIP answers before the router holds it")
	}
	st := lab.MustRun(t, r, "stat", "-c", "%a %U", "/run/haproxy/admin.sock")
	if strings.TrimSpace(st) != "600 root" {
		t.Errorf("admin socket mode and owner: %q, want 600 root", st)
	}
	if err := lab.Addr(r, "eth0", "203.0.113.1/24"); err != nil {
		t.Fatal(err)
	}

	// Balanced across both static backends.
	var seen map[string]int
	if err := lab.Eventually(10*time.Second, 100*time.Millisecond, func() error {
		var err error
		seen, err = d.names(8, "203.0.113.1:80")
		if err == nil && (seen["vm1"] == 0 || seen["vm2"] == 0 || len(seen) != 2) {
			err = fmt.Errorf("answers %v, want vm1 and vm2", seen)
		}
		return err
	}); err != nil {
		t.Fatalf("balancing: %v\n%s", err, logs())
	}

	// vm2's server dies: haproxy marks it down and every connection still
	// succeeds, on vm1.
	d.servers[1].Stop()
	if err := lab.Eventually(15*time.Second, 200*time.Millisecond, func() error {
		out, _ := lab.Run(context.Background(), r, "one-haproxy", "status")
		if !strings.Contains(out, "lb0_80/lb0_10.0.0.13_8080 DOWN") {
			return fmt.Errorf("vm2 not marked down:\n%s", out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if seen, err := d.names(10, "203.0.113.1:80"); err != nil || seen["vm1"] != 10 {
		t.Fatalf("with vm2 dead: %v %v", seen, err)
	}

	// vm3 publishes itself in OneGate: it receives connections after a
	// refresh (a reload that hands the servers' health over: vm2's down
	// state was saved for the new workers).
	if err := d.gate.WriteDocument("vm-14", []byte(lbVM(14, `"ONEGATE_HAPROXY_LB0_IP": "<ETH0_EP0>", "ONEGATE_HAPROXY_LB0_PORT": "80",
		"ONEGATE_HAPROXY_LB0_SERVER_HOST": "10.0.0.14", "ONEGATE_HAPROXY_LB0_SERVER_PORT": "8080"`))); err != nil {
		t.Fatal(err)
	}
	if err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		seen, err := d.names(6, "203.0.113.1:80")
		if err == nil && seen["vm3"] == 0 {
			err = fmt.Errorf("answers %v, want vm3 among them", seen)
		}
		return err
	}); err != nil {
		t.Fatalf("dynamic backend: %v\n%s", err, logs())
	}
	if b, err := r.ReadFile("/run/haproxy/server-state"); err != nil || !strings.Contains(string(b), " lb0_10.0.0.13_8080 10.0.0.13 0 ") {
		t.Errorf("server state saved before the reload (vm2 down): %v\n%s", err, b)
	}
	// ... and withdraws: it gets no more connections.
	if err := d.gate.WriteDocument("vm-14", []byte(lbVM(14, ""))); err != nil {
		t.Fatal(err)
	}
	if err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		if b, _ := r.ReadFile("/etc/haproxy/servers.cfg"); strings.Contains(string(b), "10.0.0.14") {
			return fmt.Errorf("servers.cfg still has vm3")
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, logs())
	}
	if err := lab.Eventually(10*time.Second, 100*time.Millisecond, func() error {
		seen, err := d.names(6, "203.0.113.1:80")
		if err == nil && seen["vm1"] != 6 {
			err = fmt.Errorf("answers %v, want vm1 only", seen)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if out, _ := lab.Run(context.Background(), r, "one-haproxy", "status"); !strings.Contains(out, "drift:    none") {
		t.Errorf("status:\n%s", out)
	}

	// haproxy stopped behind one-haproxy's back stays stopped, and
	// one-haproxy reports itself crashed (one-failover restarts crashed
	// services); a restart of one-haproxy brings haproxy back.
	if out, err := r.RC("haproxy", "stop"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if st := r.ServiceState("one-haproxy"); st != "crashed" {
		t.Fatalf("with haproxy stopped one-haproxy is %q", st)
	}
	if out, err := r.RC("one-haproxy", "restart"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		_, err := d.probe("203.0.113.1:80")
		return err
	}); err != nil {
		t.Fatalf("haproxy not back after a restart of one-haproxy: %v\n%s", err, logs())
	}

	// Stopping one-haproxy stops haproxy.
	if out, err := r.RC("one-haproxy", "stop"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if st := r.ServiceState("haproxy"); st != "stopped" {
		t.Fatalf("after stop haproxy is %q", st)
	}
	if err := lab.Eventually(5*time.Second, 50*time.Millisecond, func() error {
		if p, q := r.PIDs("haproxy"), r.PIDs("one-haproxy"); len(p)+len(q) != 0 {
			return fmt.Errorf("processes left after stop: haproxy %v, one-haproxy %v", p, q)
		}
		return nil
	}); err != nil {
		var ps strings.Builder
		for _, p := range r.PIDs("haproxy") {
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
			st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
			fmt.Fprintf(&ps, "%d: %s (%s)\n", p, strings.ReplaceAll(string(cmd), "\x00", " "), st)
		}
		t.Fatalf("%v\n%shaproxy: %s\n%s", err, ps.String(), r.ServiceState("haproxy"), logs())
	}
	if _, err := d.probe("203.0.113.1:80"); err == nil {
		t.Fatal("the LB still answers after stop")
	}
}

// TestHAProxyBadContext: a context with an invalid LB fails the start with
// the variable named, and nothing is started.
func TestHAProxyBadContext(t *testing.T) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("HAProxy test skipped: needs haproxy (scripts/install-deps.sh installs it)")
	}
	l := needLab(t)
	r, err := l.Router("router")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Install("one-haproxy"); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("/run/one-context/one_env", []byte(`export ETH0_IP="203.0.113.2"
export ONEAPP_VNF_HAPROXY_ENABLED="YES"
export ONEAPP_VNF_HAPROXY_LB0_IP="<ETH0_EP0>"
export ONEAPP_VNF_HAPROXY_LB0_PORT="80"
export ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST="10.0.0.12 backup"
export ONEAPP_VNF_HAPROXY_LB0_SERVER0_PORT="8080"
`), 0o400); err != nil {
		t.Fatal(err)
	}
	out, err := lab.Run(context.Background(), r, "one-haproxy", "configure")
	if err == nil || !strings.Contains(err.Error(), "exit status 2") || !strings.Contains(err.Error(), "ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST") {
		t.Fatalf("configure: %v\n%s", err, out)
	}
	if _, err := r.RC("one-haproxy", "start"); err == nil {
		t.Fatal("rc-service one-haproxy start succeeded with a bad context")
	}
	if st := r.ServiceState("haproxy"); st != "stopped" {
		t.Fatalf("haproxy is %q", st)
	}
}
