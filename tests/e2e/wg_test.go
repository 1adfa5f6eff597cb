package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

const wgToken = "wg-e2e-token"

// wgShared: the VPN on both instances of the virtual router (VMs 10 and 11
// of the OneGate simulator's fixtures), started by one-failover on the
// master only; the endpoint is the public VIP.
const wgShared = `export VROUTER_ID="1"
export VROUTER_KEEPALIVED_ID="10"
export VROUTER_KEEPALIVED_PASSWORD="e2e"
export ONEAPP_VNF_ROUTER4_ENABLED="YES"
export ONEAPP_VNF_WG_ENABLED="YES"
export ONEAPP_VNF_WG_INTERFACE_OUT="eth0"
export ONEAPP_VNF_WG_INTERFACE_IN="eth1"
export ONEAPP_VNF_WG_PEERS="2"
export ONEGATE_ENDPOINT="http://203.0.113.100:5030"
export TOKENTXT="` + wgToken + `"
`

var wgServices = []string{"one-failover", "one-router4", "one-wg"}

// A client on the internet connects with the configuration published to
// the router VMs' user templates and reaches a VM; when the master is lost,
// the other instance starts one-wg from the stored configuration (the same
// keys, nothing published anew) and the same client, untouched, reaches the
// VM again.
func TestWGFailover(t *testing.T) {
	h := haLab(t, "wireguard-go", "wg", "wg-quick", "busybox")
	l := h.Lab
	gate, err := sim.Start(l, h.Inet, lab.InetAddr+":5030", wgToken, "")
	if err != nil {
		t.Fatal(err)
	}
	client, err := l.Router("client")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Public.Attach(client, "eth0", "203.0.113.50/24"); err != nil {
		t.Fatal(err)
	}
	boot(t, h, wgServices, func(i int) string { return h.Context(i, wgShared+fmt.Sprintf("export VMID=\"%d\"\n", 10+i)) })
	m, err := h.Master(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b := h.Other(m)
	waitWG(t, m, true)
	waitWG(t, b, false)
	pub := strings.TrimSpace(lab.MustRun(t, m, "wg", "show", "wg0", "public-key"))

	ut, err := gate.UserTemplate(h.Inet, 10)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := base64.StdEncoding.DecodeString(ut["ONEGATE_VNF_WG_PEER1"])
	if err != nil || !strings.Contains(string(conf), "Endpoint     = "+lab.PublicVIP+":51820") {
		t.Fatalf("published peer 1: %v\n%s", err, conf)
	}
	if ut11, err := gate.UserTemplate(h.Inet, 11); err != nil || ut11["ONEGATE_VNF_WG_SERVER"] != ut["ONEGATE_VNF_WG_SERVER"] {
		t.Fatalf("VM 11 does not hold the server configuration: %v", err)
	}
	writes, err := gate.Writes(h.Inet)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := l.WGClient(client, "wg0", conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := wc.Up(); err != nil {
		t.Fatal(err)
	}
	wgReach(t, client, 10*time.Second)

	// The master is lost: the other instance serves with the same keys.
	if err := m.Lose(); err != nil {
		t.Fatal(err)
	}
	lost := time.Now()
	waitWG(t, b, true)
	if got := strings.TrimSpace(lab.MustRun(t, b, "wg", "show", "wg0", "public-key")); got != pub {
		t.Fatalf("the new master's server key differs")
	}
	// The client does nothing: WireGuard makes a new handshake by itself
	// once its old session goes unanswered.
	wgReach(t, client, 60*time.Second)
	t.Logf("the client reached the VM again %s after the master was lost", time.Since(lost).Round(100*time.Millisecond))
	after, err := gate.Writes(h.Inet)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(writes) {
		t.Errorf("the new master published again (%d writes)", len(after)-len(writes))
	}

	// wireguard-go dies on the serving instance: OpenRC says one-wg
	// crashed, one-failover restarts it with the same keys, and the
	// untouched client gets through again.
	old := b.PIDs("wireguard-go")
	if len(old) != 1 || b.Kill("wireguard-go") != 1 {
		t.Fatalf("wireguard-go processes on the new master: %v", old)
	}
	killed := time.Now()
	if err := lab.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		if p := b.PIDs("wireguard-go"); len(p) != 1 || p[0] == old[0] || b.ServiceState("one-wg") != "started" {
			return &stateErr{fmt.Sprintf("wireguard-go %v, one-wg %s", p, b.ServiceState("one-wg"))}
		}
		return nil
	}); err != nil {
		t.Fatalf("one-failover did not restart one-wg: %v\n%s", err, failoverLog(b))
	}
	if got := strings.TrimSpace(lab.MustRun(t, b, "wg", "show", "wg0", "public-key")); got != pub {
		t.Fatalf("the restarted server's key differs")
	}
	wgReach(t, client, 60*time.Second)
	t.Logf("the client reached the VM again %s after wireguard-go was killed", time.Since(killed).Round(100*time.Millisecond))
	if after2, err := gate.Writes(h.Inet); err != nil || len(after2) != len(writes) {
		t.Errorf("the restart published again: %v", err)
	}
}

// waitWG waits until r runs one-wg (or, with want false, does not).
func waitWG(t *testing.T, r *lab.Router, want bool) {
	t.Helper()
	if err := r.WaitServices(30*time.Second, want, "one-wg"); err != nil {
		t.Fatalf("%v\n%s%s", err, failoverLog(r), r.TailFile("/var/log/one-appliance/one-wg.log", 20))
	}
}

// wgReach checks that the client reaches the VM through the tunnel (the VM
// sees peer 1's tunnel address: no NAT).
func wgReach(t *testing.T, h lab.Host, timeout time.Duration) {
	t.Helper()
	var out string
	err := lab.Eventually(timeout, 200*time.Millisecond, func() error {
		var err error
		out, err = lab.Run(context.Background(), h, lab.Bin("nettool"), "probe", "tcp", lab.VMIP(0)+":80", "--timeout", "1s")
		if err == nil && !strings.Contains(out, "peer=169.254.33.3:") {
			err = &stateErr{"answer " + out}
		}
		return err
	})
	if err != nil {
		t.Fatalf("the client does not reach the VM through the tunnel: %v", err)
	}
}
