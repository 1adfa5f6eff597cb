package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// haServices are what every HA router gets in these tests, the appliance
// ones included (those not installed, the driver skips).
var haServices = []string{"one-failover", "one-router4", "one-nat4"}

// haShared is the context every router shares.
const haShared = `export VROUTER_ID="1"
export VROUTER_KEEPALIVED_ID="10"
export VROUTER_KEEPALIVED_PASSWORD="e2e"
export ONEAPP_VNF_ROUTER4_ENABLED="YES"
export ONEAPP_VNF_NAT4_ENABLED="YES"
export ONEAPP_VNF_NAT4_INTERFACES_OUT="eth0"
export ONEAPP_VNF_NAT4_PORT_FWD0="<ETH0_VIP0>:8080:10.0.0.12:80"
`

// haLab builds the HA lab of these tests (two router instances, one VM)
// and starts its servers: the internet host answers on TCP and UDP 7000,
// the VM on TCP 80 and 81. It skips the test without the tools.
func haLab(t *testing.T, tools ...string) *lab.HA {
	t.Helper()
	l := needLab(t, tools...)
	h, err := l.HA(2, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		host lab.Host
		args []string
	}{
		{h.Inet, []string{"--tcp", ":7000", "--udp", ":7000", "--name", "inet"}},
		{h.VMs[0], []string{"--tcp", ":80", "--tcp", ":81", "--name", "vm1"}},
	} {
		if _, err := l.Start(s.host, "nettool", "ready", append([]string{lab.Bin("nettool"), "serve"}, s.args...)...); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// boot installs services in every router with their own install verbs and
// boots router i with the context env(i) (lab.Router.Recontext).
func boot(t *testing.T, h *lab.HA, services []string, env func(i int) string) {
	t.Helper()
	for i, r := range h.Routers {
		if err := r.Install(services...); err != nil {
			t.Fatal(err)
		}
		if err := r.Recontext(env(i), services...); err != nil {
			t.Fatal(err)
		}
	}
}

// bootHA builds the HA lab and boots its routers with haServices and the
// shared context extra.
func bootHA(t *testing.T, extra string) *lab.HA {
	t.Helper()
	return bootHAWith(t, extra, haServices, nil)
}

// bootHAWith is bootHA with its own services, and before (when set) run
// once the lab exists and before the routers boot.
func bootHAWith(t *testing.T, extra string, services []string, before func(*lab.HA)) *lab.HA {
	t.Helper()
	h := haLab(t)
	if before != nil {
		before(h)
	}
	boot(t, h, services, func(i int) string { return h.Context(i, extra) })
	return h
}

// waitServing waits until r runs (or, with want false, does not run) the
// data-plane services of the test.
func waitServing(t *testing.T, r *lab.Router, want bool, also ...string) {
	t.Helper()
	if err := r.WaitServices(20*time.Second, want, append([]string{"one-router4", "one-nat4"}, also...)...); err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(r))
	}
}

type stateErr struct{ s string }

func (e *stateErr) Error() string { return e.s }

// failoverLog is the end of r's one-failover and keepalived logs.
func failoverLog(r *lab.Router) string {
	return r.TailFile(lab.FailoverLogFile, 40) + r.TailFile("/var/log/keepalived.log", 20)
}

// probe asks a nettool server from h and returns its answer.
func probe(h lab.Host, proto, addr string, timeout time.Duration) (string, error) {
	var out string
	err := lab.Eventually(timeout, 100*time.Millisecond, func() error {
		var err error
		out, err = lab.Run(context.Background(), h, lab.Bin("nettool"), "probe", proto, addr, "--timeout", "500ms")
		return err
	})
	return out, err
}

// Election, master node lost, takeover with services, traffic through the
// VIP, and the old master's return without a dual master.
func TestHAFailover(t *testing.T) {
	h := bootHA(t, haShared)
	m, err := h.Master(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b := h.Other(m)
	t.Logf("elected master: %s", m.Role)
	waitServing(t, m, true)
	waitServing(t, b, false)
	if !lab.HasAddr(m, "eth0", lab.PublicVIP) || lab.HasAddr(b, "eth0", lab.PublicVIP) {
		t.Fatal("the public VIP is not on the master alone")
	}
	// Only the NICs keepalived manages count for ready/standby.
	if out, err := m.RC("keepalived", "ready"); err != nil {
		t.Fatalf("keepalived ready on the master: %v %s", err, out)
	}
	if _, err := b.RC("keepalived", "ready"); err == nil {
		t.Fatal("keepalived ready on the backup")
	}
	if out, err := b.RC("keepalived", "standby"); err != nil {
		t.Fatalf("keepalived standby on the backup: %v %s", err, out)
	}
	out, err := probe(h.VMs[0], "tcp", lab.InetAddr+":7000", 5*time.Second)
	if err != nil || !strings.Contains(out, "name=inet") {
		t.Fatalf("VM -> internet through the master: %q %v", out, err)
	}
	if out, err := probe(h.Inet, "tcp", lab.PublicVIP+":8080", 5*time.Second); err != nil || !strings.Contains(out, "name=vm1") {
		t.Fatalf("port forward on the VIP: %q %v", out, err)
	}

	// The master node is lost.
	if err := m.Lose(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Master(15 * time.Second); err != nil {
		// The lost node keeps its VIPs on downed links: count the backup only.
		if !lab.HasAddr(b, "eth1", lab.PrivateVIP) {
			t.Fatalf("the backup did not take the VIP: %v\n%s", err, failoverLog(b))
		}
	}
	if !lab.HasAddr(b, "eth1", lab.PrivateVIP) || !lab.HasAddr(b, "eth0", lab.PublicVIP) {
		t.Fatalf("the backup holds not every VIP\n%s", failoverLog(b))
	}
	waitServing(t, b, true)
	out, err = probe(h.VMs[0], "tcp", lab.InetAddr+":7000", 10*time.Second)
	if err != nil || !strings.Contains(out, "name=inet") {
		t.Fatalf("VM -> internet through the new master: %q %v\n%s", out, err, failoverLog(b))
	}
	if out, err := probe(h.Inet, "tcp", lab.PublicVIP+":8080", 5*time.Second); err != nil || !strings.Contains(out, "name=vm1") {
		t.Fatalf("port forward on the VIP after failover: %q %v", out, err)
	}
	// The lost node stopped serving on its own: keepalived gone (then
	// respawned in fault, its links down).
	waitServing(t, m, false)

	// The old master returns: it stays backup, no moment with two holders.
	if err := m.Return(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		if hs := h.Holders(); len(hs) != 1 || hs[0] != b {
			t.Fatalf("after the old master returned, %d routers hold the VIP\n%s", len(hs), failoverLog(m))
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitServing(t, m, false)
	waitServing(t, b, true)
	if out, err := probe(h.VMs[0], "tcp", lab.InetAddr+":7000", 5*time.Second); err != nil || !strings.Contains(out, "name=inet") {
		t.Fatalf("VM -> internet after the return: %q %v", out, err)
	}
}
