package kernel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// lvsContext: keepalived (one-failover) holds the public VIP 203.0.113.1;
// LVS balances TCP 80 of the VIP to vm1 and vm2 (NAT, round robin) and every
// UDP port of the VIP (a firewall mark) to vm3.
const lvsContext = `export VROUTER_KEEPALIVED_ID="17"
export VROUTER_KEEPALIVED_PASSWORD="lvs"
export ONEAPP_VNF_ROUTER4_ENABLED="NO"
export ONEAPP_VNF_LB_ENABLED="YES"
export ONEAPP_VNF_LB0_IP="<ETH0_VIP0>"
export ONEAPP_VNF_LB0_PORT="80"
export ONEAPP_VNF_LB0_PROTOCOL="TCP"
export ONEAPP_VNF_LB0_METHOD="NAT"
export ONEAPP_VNF_LB0_SCHEDULER="rr"
export ONEAPP_VNF_LB0_SERVER0_HOST="10.0.0.12"
export ONEAPP_VNF_LB0_SERVER0_PORT="8080"
export ONEAPP_VNF_LB0_SERVER1_HOST="10.0.0.13"
export ONEAPP_VNF_LB0_SERVER1_PORT="8080"
export ONEAPP_VNF_LB1_IP="<ETH0_VIP0>"
export ONEAPP_VNF_LB1_SERVER0_HOST="10.0.0.14"
`

// ipvs reports why the kernel cannot run IPVS ("" when it can).
func ipvs() string {
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		return ""
	}
	_ = exec.Command("modprobe", "-q", "ip_vs").Run()
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		return ""
	}
	return "this kernel has no IPVS (/proc/net/ip_vs is missing and modprobe ip_vs failed)"
}

// bootLVS starts keepalived and one-failover in the router instance the way
// a boot does (configure of every service); one-failover then starts
// one-lvs when the router is the VRRP master.
func bootLVS(t *testing.T) *lbTopology {
	t.Helper()
	for _, tool := range []string{"keepalived", "iptables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("LVS test skipped: needs %s (scripts/install-deps.sh installs it)", tool)
		}
	}
	d := newLBTopology(t, "one-failover", "one-lvs")
	r := d.router
	if err := r.Recontext(d.context(lvsContext), "one-failover", "one-lvs"); err != nil {
		t.Fatal(err)
	}
	err := lab.Eventually(30*time.Second, 200*time.Millisecond, func() error {
		if !lab.HasAddr(r, "eth0", "203.0.113.1") {
			return fmt.Errorf("the router does not hold the VIP")
		}
		if st := r.ServiceState("one-lvs"); st != "started" {
			return fmt.Errorf("one-lvs is %q", st)
		}
		b, _ := r.ReadFile("/etc/keepalived/conf.d/lvs.conf")
		if !strings.Contains(string(b), "virtual_server 203.0.113.1 80 {") {
			return fmt.Errorf("lvs.conf:\n%s", b)
		}
		if _, err := r.ReadFile("/run/one-lvs/applied.conf"); err != nil {
			return fmt.Errorf("keepalived not reloaded with lvs.conf: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, lvsLogs(r))
	}
	return d
}

func lvsLogs(r *lab.Router) string {
	var b strings.Builder
	for _, f := range []string{"/var/log/one-appliance/one-failover.log", "/var/log/one-appliance/one-lvs.log", "/var/log/keepalived.log"} {
		c, _ := r.ReadFile(f)
		fmt.Fprintf(&b, "--- %s:\n%s\n", f, c)
	}
	return b.String()
}

// TestLVSKeepsVRRP: one-failover starts one-lvs on the master; the LVS
// configuration (a port LB and an all-ports LB) is accepted by keepalived
// -t as part of the live configuration, the firewall mark is in place, and
// keepalived keeps running and holding the VIP, whether or not the kernel
// has IPVS (without it keepalived runs VRRP only). Stopping one-lvs empties
// lvs.conf and removes the mark, and VRRP goes on.
func TestLVSKeepsVRRP(t *testing.T) {
	d := bootLVS(t)
	r := d.router
	if out, err := lab.Run(context.Background(), r, "keepalived", "-t", "-f", "/etc/keepalived/keepalived.conf"); err != nil {
		t.Fatalf("keepalived -t rejects the live configuration: %v\n%s", err, out)
	}
	save := lab.MustRun(t, r, "iptables-save", "-t", "mangle")
	if !strings.Contains(save, "-A LVS-FWMARK -d 203.0.113.1/32 -p udp -j MARK --set-xmark 0x2711/0xffffffff") ||
		!strings.Contains(save, "-A PREROUTING -m comment --comment one-lvs -j LVS-FWMARK") {
		t.Fatalf("marks:\n%s", save)
	}
	if b, _ := r.ReadFile("/etc/keepalived/conf.d/lvs.conf"); !strings.Contains(string(b), "virtual_server fwmark 10001 {") {
		t.Fatalf("lvs.conf:\n%s", b)
	}
	if st := r.ServiceState("keepalived"); st != "started" || len(r.PIDs("keepalived")) == 0 {
		t.Fatalf("keepalived is %q after the LVS configuration\n%s", st, lvsLogs(r))
	}
	if why := ipvs(); why != "" {
		if out, _ := lab.Run(context.Background(), r, "one-lvs", "status"); !strings.Contains(out, "no IPVS") {
			t.Errorf("status does not say IPVS is missing:\n%s", out)
		}
	}
	// A context change (one more real server) reaches keepalived with a
	// reload: VRRP keeps its state, the VIP never leaves.
	if err := r.Recontext(d.context(lvsContext+"export ONEAPP_VNF_LB0_SERVER2_HOST=\"10.0.0.14\"\nexport ONEAPP_VNF_LB0_SERVER2_PORT=\"8080\"\n"), "one-failover", "one-lvs"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		if !lab.HasAddr(r, "eth0", "203.0.113.1") {
			return fmt.Errorf("the VIP left the router")
		}
		b, _ := r.ReadFile("/run/one-lvs/applied.conf")
		if !strings.Contains(string(b), "real_server 10.0.0.14 8080") {
			return fmt.Errorf("keepalived has not read the new server")
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, lvsLogs(r))
	}

	if out, err := r.RC("one-lvs", "stop"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b, _ := r.ReadFile("/etc/keepalived/conf.d/lvs.conf"); strings.Contains(string(b), "virtual_server") {
		t.Fatalf("lvs.conf after stop:\n%s", b)
	}
	if save := lab.MustRun(t, r, "iptables-save", "-t", "mangle"); strings.Contains(save, "LVS-FWMARK") {
		t.Fatalf("marks left after stop:\n%s", save)
	}
	if st := r.ServiceState("keepalived"); st != "started" || !lab.HasAddr(r, "eth0", "203.0.113.1") {
		t.Fatalf("after one-lvs stop keepalived is %q, VIP held %t", st, lab.HasAddr(r, "eth0", "203.0.113.1"))
	}
}

// TestLVSLive balances real TCP connections through IPVS: it runs where
// the kernel has IPVS, and is skipped with the reason where it has none.
func TestLVSLive(t *testing.T) {
	if why := ipvs(); why != "" {
		t.Skip("live LVS test skipped: " + why)
	}
	d := bootLVS(t)
	r := d.router
	// NAT: the replies of the real servers come back through the router.
	lab.MustRun(t, r, "sysctl", "-qw", "net.ipv4.conf.all.forwarding=1")
	if err := lab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
		seen, err := d.names(8, "203.0.113.1:80")
		if err == nil && (seen["vm1"] == 0 || seen["vm2"] == 0) {
			err = fmt.Errorf("answers %v, want vm1 and vm2", seen)
		}
		return err
	}); err != nil {
		t.Fatalf("%v\n%s", err, lvsLogs(r))
	}
	d.servers[1].Stop()
	if err := lab.Eventually(30*time.Second, 500*time.Millisecond, func() error {
		seen, err := d.names(6, "203.0.113.1:80")
		if err == nil && seen["vm1"] != 6 {
			err = fmt.Errorf("answers %v, want vm1 only", seen)
		}
		return err
	}); err != nil {
		t.Fatalf("a dead real server is not taken out: %v", err)
	}
}
