package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/tests/lab"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// faultServices are installed in the fault lab: the failover pair plus a
// daemon of ours (one-dhcp4v2), a wrapped one (one-dns: unbound) and the
// OneGate clients (one-sdnat4, one-haproxy, one-wg: see
// faults_onegate_test.go).
var faultServices = []string{"one-failover", "one-router4", "one-nat4", "one-dns", "one-dhcp4v2", "one-sdnat4", "one-haproxy", "one-wg"}

// faultDaemons are the services every fault starts from, started on the
// master.
var faultDaemons = []string{"one-dns", "one-dhcp4v2", "one-sdnat4", "one-haproxy", "one-wg"}

const faultShared = haShared + `export ONEAPP_VNF_DNS_ENABLED="YES"
export ONEAPP_VNF_DNS_INTERFACES="eth1"
export ONEAPP_VNF_DNS_USE_ROOTSERVERS="NO"
export ONEAPP_VNF_DNS_NAMESERVERS="203.0.113.100"
export ONEAPP_VNF_DHCP4_ENABLED="YES"
export ONEAPP_VNF_DHCP4_INTERFACES="eth1"
export ONEAPP_VNF_DHCP4_ETH1="10.0.0.0/24:10.0.0.100-10.0.0.199"
export ONEAPP_VNF_DHCP4_MAC2IP_ENABLED="NO"
` + gateShared

// fault is one fault injected into the running appliance, with the outcome
// it must have. Faults run in order on one lab, each from a converged
// state.
type fault struct {
	name string
	run  func(t *testing.T, a *appliance, m, b *lab.Router)
}

var faults = []fault{
	{"service killed", faultServiceKilled},
	{"one-failover killed", faultFailoverKilled},
	{"NIC without VIP removed and added back", faultNICNoVIP},
	{"disk full writing a config", faultDiskFull},
	{"keepalived killed", faultKeepalivedKilled},
	{"a service start hangs on a master that loses the VIPs", faultHangingStart},
	{"failback: a client keeps the address the other router gave it", faultFailbackKeepsAddress},
	{"NIC with VIPs removed and added back", faultNICWithVIPs},
	{"OneGate down", faultOneGate(sim.Fault{Status: 503}, true)},
	// Longer than the client's timeout of an attempt (10 s): no request
	// ever gets an answer. (No recontextualization: render and status
	// then wait their whole bound, 8 s, each.)
	{"OneGate slow", faultOneGate(sim.Fault{Delay: sim.Duration{D: 15 * time.Second}}, false)},
}

// The appliance under faults: each injected fault has its expected outcome
// asserted (restarted and converged, the VIPs moved once, nothing touched
// that the fault did not touch, the last good file kept and the error
// reported).
func TestFaults(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("fault test skipped: needs dig (scripts/install-deps.sh installs dnsutils)")
	}
	for _, tool := range []string{"haproxy", "wireguard-go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("fault test skipped: needs %s (scripts/install-deps.sh installs it)", tool)
		}
	}
	a := bootApplianceWith(t, faultShared, setupGate, faultServices...)
	for _, f := range faults {
		ok := t.Run(f.name, func(t *testing.T) {
			m, b := a.serving(t)
			waitStarted(t, m, faultDaemons...)
			// The OneGate clients applied what OneGate says (haproxy
			// runs its current configuration, worker included), and
			// nothing moves any more.
			converged(t, m, "one-sdnat4")
			converged(t, m, "one-haproxy")
			settled(t, m, b)
			f.run(t, a, m, b)
		})
		if !ok {
			break
		}
	}
}

// waitStarted waits until every svc is started on r.
func waitStarted(t *testing.T, r *lab.Router, svcs ...string) {
	t.Helper()
	if err := r.WaitServices(30*time.Second, true, svcs...); err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(r))
	}
}

// status runs `<svc> status --json` on r.
func status(t *testing.T, r *lab.Router, svc string) (cli.Report, int) {
	t.Helper()
	rep, code, err := statusOf(r, svc)
	if err != nil {
		t.Fatal(err)
	}
	return rep, code
}

// statusOf is status for any goroutine.
func statusOf(r *lab.Router, svc string) (cli.Report, int, error) {
	cmd := r.Command(context.Background(), "/usr/sbin/"+svc, "status", "--json")
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		return cli.Report{}, 0, err
	}
	var rep cli.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		return rep, code, fmt.Errorf("%s status --json: %v: %s", svc, err, out)
	}
	return rep, code, nil
}

// converged waits until svc's status on r finds no drift.
func converged(t *testing.T, r *lab.Router, svc string) {
	t.Helper()
	var rep cli.Report
	if err := lab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
		var code int
		rep, code = status(t, r, svc)
		if code != 0 {
			return fmt.Errorf("%s on %s: status exit %d: %v", svc, r.Role, code, rep.Drift)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%+v", err, rep)
	}
}

// lease asks for a DHCP lease from the VM (served by the master m).
func lease(t *testing.T, vm lab.Host, m *lab.Router) {
	t.Helper()
	if out, err := lab.Run(context.Background(), vm, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", "/bin/true"); err != nil {
		t.Fatalf("no DHCP lease: %v %s\n%s", err, out, m.TailFile("/var/log/one-appliance/one-dhcp4v2.log", 30))
	}
}

// resolve asks r's unbound (on the VIP, from the VM) for name.
func resolve(vm lab.Host, name string) string {
	out, _ := lab.Run(context.Background(), vm, "dig", "+short", "+time=1", "+tries=2", "@"+lab.PrivateVIP, name)
	return strings.TrimSpace(out)
}

// only fails the test if anything but the allowed keys changed.
func only(t *testing.T, r *lab.Router, before, after map[string]string, allowed ...string) {
	t.Helper()
	for _, c := range lab.ChangedStarts(before, after) {
		key, _, _ := strings.Cut(c, ":")
		if strings.HasPrefix(c, "pid:") {
			key = "pid:" + strings.SplitN(c, ":", 3)[1]
		}
		if !slices.Contains(allowed, key) {
			t.Errorf("%s: %s", r.Role, c)
		}
	}
}

// A daemon of ours (one-dhcp4v2) and a counterpart daemon (unbound) are
// killed with SIGKILL on the master: their supervisor starts them again,
// they serve again and their status finds no drift; nothing else restarts.
func faultServiceKilled(t *testing.T, a *appliance, m, b *lab.Router) {
	for _, c := range []struct{ comm, svc string }{{"one-dhcp4v2", "one-dhcp4v2"}, {"unbound", "one-dns"}} {
		before := m.Starts()
		if before["pid:"+c.comm] == "" {
			t.Fatalf("no %s running on the master", c.comm)
		}
		if m.Kill(c.comm) == 0 {
			t.Fatalf("nothing to kill: %s", c.comm)
		}
		if err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
			if p := m.Starts()["pid:"+c.comm]; p == "" || p == before["pid:"+c.comm] {
				return fmt.Errorf("%s not running again (%q)", c.comm, p)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		converged(t, m, c.svc)
		only(t, m, before, m.Starts(), "pid:"+c.comm)
	}
	lease(t, a.VMs[0], m)
	if got := resolve(a.VMs[0], "ep0.eth1.vr"); got != lab.PrivateVIP {
		t.Fatalf("ep0.eth1.vr resolves to %q", got)
	}
}

// one-failover killed: respawned, it learns the state from the NICs and
// leaves the running services and the kernel as they are.
func faultFailoverKilled(t *testing.T, a *appliance, m, b *lab.Router) {
	before, kb := m.Starts(), a.snapshot(t, m).kernel
	since := time.Now()
	if m.Kill("one-failover") == 0 {
		t.Fatal("no one-failover to kill")
	}
	if err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		if len(m.FailoverLines(since, "msg=applied", "action=serve")) == 0 {
			return fmt.Errorf("the respawned one-failover has not served")
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(m))
	}
	for _, l := range m.FailoverLines(since, "msg=applied", "action=serve") {
		if !strings.Contains(l, "started=0 reloaded=0 stopped=0 failed=0") {
			t.Errorf("the respawned one-failover acted: %s", l)
		}
	}
	only(t, m, before, m.Starts(), "pid:one-failover")
	if d := kb.Diff(a.snapshot(t, m).kernel); len(d) > 0 {
		t.Errorf("the kernel changed: %s", strings.Join(d, "\n"))
	}
	if hs := a.Holders(); len(hs) != 1 || hs[0] != m {
		t.Fatal("the VIPs moved")
	}
}

// A NIC without a VIP vanishes from the master and comes back (a hot-plug
// glitch): the kernel gives the new NIC default settings (forwarding off),
// which status reports as drift; the recontextualization that follows,
// with the very same context, re-applies one-router4 alone.
func faultNICNoVIP(t *testing.T, a *appliance, m, b *lab.Router) {
	lan, err := a.Lab.Segment("lan3")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range a.Routers {
		if err := lan.Attach(r, "eth2", fmt.Sprintf("10.0.3.%d/24", 2+i)); err != nil {
			t.Fatal(err)
		}
	}
	a.reconciled(t, m, a.contextualize(t, func(i int) string {
		return a.env[i] + fmt.Sprintf("export ETH2_IP=\"10.0.3.%d\"\nexport ETH2_MASK=\"255.255.255.0\"\n", 2+i)
	}))
	if err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error { return forwarding(m, "eth2", "1") }); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Run(context.Background(), m, "ip", "link", "del", "eth2"); err != nil {
		t.Fatal(err)
	}
	if err := lan.Attach(m, "eth2", fmt.Sprintf("10.0.3.%d/24", 2+slices.Index(a.Routers, m))); err != nil {
		t.Fatal(err)
	}
	if err := forwarding(m, "eth2", "0"); err != nil {
		t.Fatalf("the new NIC does not start with forwarding off: %v", err)
	}
	if rep, code := status(t, m, "one-router4"); code != 3 {
		t.Fatalf("one-router4 status: exit %d, want 3 (drift): %+v", code, rep)
	}
	before := map[*lab.Router]map[string]string{m: m.Starts(), b: b.Starts()}
	since := a.contextualize(t, func(i int) string { return a.env[i] })
	a.reconciled(t, m, since)
	if v := serviceVerbs(m, since); !slices.Equal(v, []string{"one-router4 reload"}) {
		t.Fatalf("ran %v, want one-router4 reload alone\n%s", v, failoverLog(m))
	}
	if l := m.FailoverLines(since, "service=one-router4", "verb=reload"); len(l) != 1 || !strings.Contains(l[0], `why="live state drifted"`) {
		t.Errorf("one-router4 reloaded for another reason: %v", l)
	}
	if err := forwarding(m, "eth2", "1"); err != nil {
		t.Fatal(err)
	}
	converged(t, m, "one-router4")
	for r, s := range before {
		only(t, r, s, r.Starts())
	}
}

// The disk is full when one-dns writes unbound.conf (a tiny full tmpfs
// over /etc/unbound inside the master's mount namespace) and the context
// changes the DNS domain: the contextualization fails and says so, the
// last good file stays (no partial file, no temporary file left), unbound
// keeps running and answering with it, and status shows the error and the
// drift. Once there is room, the same context applies and status is clean.
func faultDiskFull(t *testing.T, a *appliance, m, b *lab.Router) {
	const conf = "/etc/unbound/unbound.conf"
	fill := `set -e
mkdir -p /run/fault-unbound
cp -a /etc/unbound/. /run/fault-unbound/
mount -t tmpfs -o size=64k tmpfs /etc/unbound
cp -a /run/fault-unbound/. /etc/unbound/
dd if=/dev/zero of=/etc/unbound/.filler bs=4k 2>/dev/null || true`
	if err := lab.Sh(context.Background(), m, fill); err != nil {
		t.Fatal(err)
	}
	good, err := m.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	before := m.Starts()
	if got := resolve(a.VMs[0], "ep0.eth1.vr"); got != lab.PrivateVIP {
		t.Fatalf("before: ep0.eth1.vr resolves to %q", got)
	}
	changed := func(i int) string { return a.env[i] + "export ONEAPP_VNF_DNS_CLUSTER_DOMAIN=\"full.example\"\n" }
	since := time.Now()
	for i, r := range a.Routers {
		st, err := r.Contextualize(changed(i))
		switch {
		case r == m && (err == nil || st != "configure_failure"):
			t.Fatalf("the master's contextualization with a full disk: status %q, %v", st, err)
		case r != m && err != nil:
			t.Fatal(err)
		}
	}
	if l := m.LogLines("/var/log/one-appliance/configure.log", "one-dns configure: failed"); len(l) == 0 {
		t.Error("configure.log does not name one-dns")
	}
	// one-failover tries to re-apply one-dns, which fails the same way.
	if err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		if len(m.FailoverLines(since, "msg=applied", "action=reconcile", "failed=1")) == 0 {
			return fmt.Errorf("no failed reconcile")
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(m))
	}
	if now, _ := m.ReadFile(conf); string(now) != string(good) {
		t.Fatalf("unbound.conf changed with a full disk:\n%s", now)
	}
	if out, err := lab.Run(context.Background(), m, "ls", "-A", "/etc/unbound"); err != nil || strings.Contains(out, ".tmp") {
		t.Errorf("a temporary file was left: %v %s", err, out)
	}
	only(t, m, before, m.Starts())
	if got := resolve(a.VMs[0], "ep0.eth1.vr"); got != lab.PrivateVIP {
		t.Errorf("unbound no longer answers with the last good file: %q", got)
	}
	rep, code := status(t, m, "one-dns")
	if code != 3 || !slices.ContainsFunc(rep.Drift, func(d string) bool { return strings.Contains(d, conf) }) {
		t.Errorf("status: exit %d, drift %v; want the file's drift", code, rep.Drift)
	}
	if !slices.ContainsFunc(rep.LastErrors, func(e cli.VerbError) bool {
		return e.Verb == "configure" && strings.Contains(e.Message, "no space left on device")
	}) {
		t.Errorf("status does not show the write error: %+v", rep.LastErrors)
	}

	// Room again: the same context applies, status is clean.
	if err := lab.Sh(context.Background(), m, "rm -f /etc/unbound/.filler"); err != nil {
		t.Fatal(err)
	}
	since = a.contextualize(t, changed)
	a.reconciled(t, m, since)
	if err := lab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
		if got := resolve(a.VMs[0], "ep0.eth1.full.example"); got != lab.PrivateVIP {
			return fmt.Errorf("ep0.eth1.full.example resolves to %q", got)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(m))
	}
	converged(t, m, "one-dns")
	if rep, _ := status(t, m, "one-dns"); len(rep.LastErrors) > 0 {
		t.Errorf("errors still shown once applied: %+v", rep.LastErrors)
	}
}

// keepalived killed on the master (SIGKILL: it cannot release its VIPs):
// the master stops serving at once, the backup takes the VIPs and serves,
// the killed keepalived is started again and stays backup; traffic flows
// through the new master.
func faultKeepalivedKilled(t *testing.T, a *appliance, m, b *lab.Router) {
	// A client takes a lease from the master and uses it: after the
	// failover the new master, which does not share the old one's
	// leases, must not give that address to another client.
	old, held := dhcpBeforeFailover(t, a, m)

	// one-failover removes the VIPs a killed keepalived leaves at once, so
	// the VIPs move before supervise-daemon respawns keepalived (1 s).
	failOver(t, a, m, b, false)
	nm, nb := a.serving(t)
	if nm != b || nb != m {
		t.Fatalf("the master is %s, want %s", nm.Role, b.Role)
	}
	if out, err := m.RC("keepalived", "standby"); err != nil {
		t.Fatalf("the old master holds VIPs: %v %s", err, out)
	}
	probeOK(t, a.VMs[0], "tcp", lab.InetAddr+":7000", "inet")
	probeOK(t, a.Inet, "tcp", lab.PublicVIP+":8080", "vm1")
	lease(t, a.VMs[0], b)
	dhcpAfterFailover(t, a, b, old, held)
}

// hangArg marks the process a hanging service start leaves running.
const hangArg = "6061"

// A service's start hangs on the router that just became master (its
// binary waits forever), and that router loses the VIPs back while it
// hangs: its one-failover cancels the start at once (the hanging process
// and its group are killed) and stops its services, well before the
// start's own deadline (60 s); the other router serves.
func faultHangingStart(t *testing.T, a *appliance, m, b *lab.Router) {
	// b's one-dns start hangs; every other verb runs the real binary.
	bin := "/usr/sbin/one-dns"
	if out, err := b.Command(context.Background(), "mv", bin, bin+".real").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	defer func() {
		if out, err := b.Command(context.Background(), "mv", bin+".real", bin).CombinedOutput(); err != nil {
			t.Errorf("restoring %s: %v %s", bin, err, out)
		}
	}()
	wrapper := "#!/bin/sh\ncase \" $* \" in *\" start \"*) exec sleep " + hangArg + " ;; esac\nexec " + bin + ".real \"$@\"\n"
	if err := b.WriteFile(bin, []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}

	// m loses the VIPs: b becomes master and its start of one-dns hangs.
	failOver(t, a, m, b, false)
	if err := lab.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		if len(b.PIDsWith("sleep", hangArg)) == 0 {
			return fmt.Errorf("one-dns start not hanging on %s", b.Role)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(b))
	}

	// b loses the VIPs while the start hangs.
	since := time.Now()
	failOver(t, a, b, m, true)
	if err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		if p := b.PIDsWith("sleep", hangArg); len(p) > 0 {
			return fmt.Errorf("the hanging start still runs on %s: %v", b.Role, p)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(b))
	}
	if err := b.WaitServices(20*time.Second, false, faultDaemons...); err != nil {
		t.Fatalf("%s kept serving: %v\n%s", b.Role, err, failoverLog(b))
	}
	if len(b.FailoverLines(since, "cancelling their starts")) == 0 {
		t.Errorf("%s did not log the cancelled start\n%s", b.Role, failoverLog(b))
	}
	waitStarted(t, m, faultDaemons...)
	converged(t, m, "one-dns")
	probeOK(t, a.VMs[0], "tcp", lab.InetAddr+":7000", "inet")
	probeOK(t, a.Inet, "tcp", lab.PublicVIP+":8080", "vm1")
}

// failOver kills from's keepalived (SIGKILL: a crash) and waits until to
// alone holds the VIPs and, unless now, until from's keepalived runs again
// (as backup).
func failOver(t *testing.T, a *appliance, from, to *lab.Router, now bool) {
	t.Helper()
	before := from.Starts()["pid:keepalived"]
	if from.Kill("keepalived") == 0 {
		t.Fatalf("no keepalived to kill on %s", from.Role)
	}
	movedTo(t, a, to)
	if now {
		return
	}
	if err := lab.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		if p := from.Starts()["pid:keepalived"]; p == "" || p == before {
			return fmt.Errorf("keepalived not started again on %s", from.Role)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A client leases an address from m; m fails over to b, where the client
// (rebooted, asking for another address) gets that one; b fails back to m,
// which still has the first address on record for the client. The client,
// rebooting (INIT-REBOOT: a REQUEST for the address it has), is
// acknowledged its address: m moves the lease rather than NAK it, which
// would make it drop the address and its connections.
func faultFailbackKeepsAddress(t *testing.T, a *appliance, m, b *lab.Router) {
	const first, second = "10.0.0.160", "10.0.0.170"
	const logFile = "/var/log/one-appliance/one-dhcp4v2.log"
	c := dhcpHost(t, a, "failbackvm")
	if got, err := c.Lease("-r", first); err != nil || got["ip"] != first {
		t.Fatalf("asking %s for %s: %v %v\n%s", m.Role, first, got, err, m.TailFile(logFile, 20))
	}
	failOver(t, a, m, b, false)
	waitStarted(t, b, "one-dhcp4v2")
	if got, err := c.Lease("-r", second); err != nil || got["ip"] != second {
		t.Fatalf("asking %s for %s: %v %v\n%s", b.Role, second, got, err, b.TailFile(logFile, 20))
	}
	failOver(t, a, b, m, false)
	waitStarted(t, m, "one-dhcp4v2")
	since := time.Now()
	out, err := lab.Run(context.Background(), c.Host, lab.Bin("nettool"), "reboot", "eth0", second)
	if err != nil || strings.TrimSpace(out) != "ACK "+second {
		t.Fatalf("the client rebooting with %s at %s (%s on record): %q %v\n%s", second, m.Role, first, out, err, m.TailFile(logFile, 20))
	}
	if len(m.LogLinesSince(logFile, since, "lease moved", "to="+second)) == 0 {
		t.Errorf("%s did not log the moved lease\n%s", m.Role, m.TailFile(logFile, 20))
	}
}

// heldAddr is the pool address the client of dhcpBeforeFailover asks for:
// far below the top, where the routers' dynamic allocations start.
const heldAddr = "10.0.0.150"

// dhcpBeforeFailover attaches a new client ("oldvm") to the private
// network, which takes heldAddr from the master m and configures it.
func dhcpBeforeFailover(t *testing.T, a *appliance, m *lab.Router) (*lab.DHCPClient, string) {
	t.Helper()
	c := dhcpHost(t, a, "oldvm")
	got, err := c.Lease("-r", heldAddr)
	if err != nil || got["ip"] != heldAddr {
		t.Fatalf("oldvm asking %s for %s: %v %v\n%s", m.Role, heldAddr, got, err, m.TailFile("/var/log/one-appliance/one-dhcp4v2.log", 30))
	}
	lab.MustRun(t, c.Host, "ip", "addr", "add", heldAddr+"/24", "dev", "eth0")
	return c, heldAddr
}

// dhcpHost attaches a host without an address to the private network.
func dhcpHost(t *testing.T, a *appliance, name string) *lab.DHCPClient {
	t.Helper()
	h, err := a.Lab.Host(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Private.Attach(h, "eth0"); err != nil {
		t.Fatal(err)
	}
	c, err := a.Lab.DHCPClient(h, "eth0", false)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dhcpAfterFailover: a new client asking the new master b for the address
// oldvm took from the old master is offered another (b's ARP probe finds
// oldvm on it), and oldvm renews its address from b.
func dhcpAfterFailover(t *testing.T, a *appliance, b *lab.Router, old *lab.DHCPClient, held string) {
	t.Helper()
	logTail := func() string { return b.TailFile("/var/log/one-appliance/one-dhcp4v2.log", 30) }
	got, err := dhcpHost(t, a, "newvm").Lease("-r", held)
	if err != nil {
		t.Fatalf("new client's lease from %s: %v\n%s", b.Role, err, logTail())
	}
	if got["ip"] == held {
		t.Fatalf("the new master gave %s, which oldvm holds from the old master, to a new client\n%s", held, logTail())
	}
	if len(b.LogLines("/var/log/one-appliance/one-dhcp4v2.log", "address in use on the link", "ip="+held+" ")) == 0 {
		t.Errorf("%s did not log %s in use\n%s", b.Role, held, logTail())
	}
	if renewed, err := old.Lease("-r", held); err != nil || renewed["ip"] != held {
		t.Fatalf("oldvm renewing %s from %s: %v %v\n%s", held, b.Role, renewed, err, logTail())
	}
	t.Logf("after the failover: oldvm keeps %s, a new client asking for it gets %s", held, got["ip"])
}

// movedTo waits until b alone holds the VIPs.
func movedTo(t *testing.T, a *appliance, b *lab.Router) {
	t.Helper()
	if err := lab.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		if hs := a.Holders(); len(hs) != 1 || hs[0] != b || !lab.HasAddr(b, "eth0", lab.PublicVIP) {
			return fmt.Errorf("%s does not hold the VIPs alone", b.Role)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(b))
	}
}

// The master's NIC with a VIP is removed: keepalived goes to fault and
// hands the VIPs over; the NIC comes back with the recontextualization
// that follows (same context): the router rejoins as backup, one master
// serves, traffic flows.
func faultNICWithVIPs(t *testing.T, a *appliance, m, b *lab.Router) {
	backups := len(m.LogLines("/var/log/keepalived.log", "Entering BACKUP STATE"))
	if _, err := lab.Run(context.Background(), m, "ip", "link", "del", "eth1"); err != nil {
		t.Fatal(err)
	}
	movedTo(t, a, b)
	waitServing(t, b, true)
	waitServing(t, m, false)
	i := slices.Index(a.Routers, m)
	if err := a.Private.Attach(m, "eth1", lab.RouterIP(i, false)+"/24"); err != nil {
		t.Fatal(err)
	}
	a.contextualize(t, func(i int) string { return a.env[i] })
	nm, nb := a.serving(t)
	if nm != b || nb != m {
		t.Fatalf("the master is %s after the NIC came back, want %s (no preemption)", nm.Role, b.Role)
	}
	if out, err := m.RC("keepalived", "standby"); err != nil {
		t.Fatalf("%s: %v %s", m.Role, err, out)
	}
	// Back in the group as backup, not left in fault.
	if err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		if len(m.LogLines("/var/log/keepalived.log", "Entering BACKUP STATE")) <= backups {
			return fmt.Errorf("%s's keepalived did not return to backup", m.Role)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(m))
	}
	probeOK(t, a.VMs[0], "tcp", lab.InetAddr+":7000", "inet")
	probeOK(t, a.Inet, "tcp", lab.PublicVIP+":8080", "vm1")
}
