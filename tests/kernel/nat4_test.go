package kernel

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// natTopology: the internet host on the router's eth0 (203.0.113.0/24), two
// VMs and the router's eth1 on a private segment (10.0.0.0/24), a management
// host on eth2. Every host runs a nettool server naming itself.
type natTopology struct {
	lab                  *lab.Lab
	inet, vm1, vm2, mgmt *lab.Namespace
	router               *lab.Router
}

const natContext = `export ETH0_IP="203.0.113.1"
export ETH0_MASK="255.255.255.0"
export ETH1_IP="10.0.0.1"
export ETH1_MASK="255.255.255.0"
export ETH2_IP="192.168.50.1"
export ETH2_MASK="255.255.255.0"
export ETH2_VROUTER_MANAGEMENT="YES"
export ONEAPP_VNF_ROUTER4_ENABLED="YES"
export ONEAPP_VNF_NAT4_ENABLED="YES"
export ONEAPP_VNF_NAT4_INTERFACES_OUT="eth0"
export ONEAPP_VNF_NAT4_PORT_FWD0="<ETH0_EP0>:8080:10.0.0.12:80"
export ONEAPP_VNF_NAT4_PORT_FWD1="5353:10.0.0.12:53"
export ONEAPP_VNF_NAT4_PORT_FWD12="8081:10.0.0.12:80"
`

func newNAT(t *testing.T) *natTopology {
	l := needLab(t)
	nt := &natTopology{lab: l}
	var err error
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	nt.inet, err = l.Host("inet")
	must(err)
	nt.vm1, err = l.Host("vm1")
	must(err)
	nt.vm2, err = l.Host("vm2")
	must(err)
	nt.mgmt, err = l.Host("mgmt")
	must(err)
	nt.router, err = l.Router("router")
	must(err)
	must(l.Link(nt.inet, "eth0", nt.router, "eth0"))
	must(lab.Addr(nt.inet, "eth0", "203.0.113.100/24"))
	must(lab.Addr(nt.router, "eth0", "203.0.113.1/24"))
	priv, err := l.Segment("private")
	must(err)
	must(priv.Attach(nt.router, "eth1", "10.0.0.1/24"))
	must(priv.Attach(nt.vm1, "eth0", "10.0.0.12/24"))
	must(priv.Attach(nt.vm2, "eth0", "10.0.0.13/24"))
	must(l.Link(nt.mgmt, "eth0", nt.router, "eth2"))
	must(lab.Addr(nt.mgmt, "eth0", "192.168.50.100/24"))
	must(lab.Addr(nt.router, "eth2", "192.168.50.1/24"))
	for _, vm := range []*lab.Namespace{nt.vm1, nt.vm2} {
		lab.MustRun(t, vm, "ip", "route", "add", "default", "via", "10.0.0.1")
	}
	for _, s := range []struct {
		h    lab.Host
		args []string
	}{
		{nt.inet, []string{"--tcp", ":7000", "--udp", ":7000", "--name", "inet"}},
		{nt.vm1, []string{"--tcp", ":80", "--udp", ":53", "--name", "vm1"}},
		{nt.vm2, []string{"--tcp", ":8081", "--tcp", ":80", "--name", "vm2"}},
		{nt.mgmt, []string{"--tcp", ":7000", "--name", "mgmt"}},
	} {
		_, err := l.Start(s.h, "nettool", "ready", append([]string{lab.Bin("nettool"), "serve"}, s.args...)...)
		must(err)
	}
	must(nt.router.WriteFile("/run/one-context/one_env", []byte(natContext), 0o400))
	return nt
}

func (nt *natTopology) one(t *testing.T, svc, verb string, extraEnv ...string) (string, error) {
	t.Helper()
	args := append([]string{"env"}, extraEnv...)
	args = append(args, lab.Bin(svc), verb)
	return lab.Run(context.Background(), nt.router, args...)
}

func probe(h lab.Host, proto, addr string) (string, error) {
	return lab.Run(context.Background(), h, lab.Bin("nettool"), "probe", proto, addr, "--timeout", "1s")
}

func expect(t *testing.T, h lab.Host, proto, addr string, want ...string) {
	t.Helper()
	out, err := probe(h, proto, addr)
	if err != nil {
		t.Fatalf("%s %s from %s: %v", proto, addr, h.Netns(), err)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("%s %s from %s answered %q, want %q", proto, addr, h.Netns(), out, w)
		}
	}
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// rules is iptables-save of every table without comments and counters.
func rules(t *testing.T, h lab.Host) string {
	t.Helper()
	out := lab.MustRun(t, h, "iptables-save")
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "#") {
			keep = append(keep, counters.ReplaceAllString(l, "[0:0]"))
		}
	}
	return strings.Join(keep, "\n")
}

func TestNAT4(t *testing.T) {
	nt := newNAT(t)
	// Someone else's rule in POSTROUTING must survive everything.
	lab.MustRun(t, nt.router, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.0/24", "-j", "RETURN")
	beforeWithCanary := rules(t, nt.router)

	for _, svc := range []string{"one-router4", "one-nat4"} {
		if out, err := nt.one(t, svc, "start"); err != nil {
			t.Fatalf("%s start: %v\n%s", svc, err, out)
		}
	}

	t.Run("masquerade: the internet host sees the router's public address", func(t *testing.T) {
		expect(t, nt.vm1, "tcp", "203.0.113.100:7000", "peer=203.0.113.1:", "name=inet")
		expect(t, nt.vm2, "udp", "203.0.113.100:7000", "peer=203.0.113.1:", "name=inet")
	})
	t.Run("TCP port forward on the public endpoint", func(t *testing.T) {
		expect(t, nt.inet, "tcp", "203.0.113.1:8080", "name=vm1", "peer=203.0.113.100:", "local=10.0.0.12:80")
	})
	t.Run("UDP port forward without old_dest", func(t *testing.T) {
		expect(t, nt.inet, "udp", "203.0.113.1:5353", "name=vm1", "peer=203.0.113.100:", "local=:53")
	})
	t.Run("hairpin: a VM reaches the forward on the public address", func(t *testing.T) {
		expect(t, nt.vm2, "tcp", "203.0.113.1:8080", "name=vm1", "peer=10.0.0.1:")
		expect(t, nt.vm2, "tcp", "203.0.113.1:8081", "name=vm1", "peer=10.0.0.1:")
	})
	t.Run("a forward without old_dest leaves traffic passing through alone", func(t *testing.T) {
		lab.MustRun(t, nt.inet, "ip", "route", "add", "10.0.0.0/24", "via", "203.0.113.1")
		defer lab.MustRun(t, nt.inet, "ip", "route", "del", "10.0.0.0/24", "via", "203.0.113.1")
		expect(t, nt.inet, "tcp", "10.0.0.13:8081", "name=vm2", "peer=203.0.113.100:")
		expect(t, nt.inet, "tcp", "203.0.113.1:8081", "name=vm1")
	})
	t.Run("management NIC: forwarding untouched, never port-forwarded", func(t *testing.T) {
		if v := strings.TrimSpace(lab.MustRun(t, nt.router, "sysctl", "-n", "net.ipv4.conf.eth2.forwarding")); v != "0" {
			t.Fatalf("eth2 forwarding = %s", v)
		}
		if out, err := probe(nt.mgmt, "tcp", "192.168.50.1:8081"); err == nil {
			t.Fatalf("port forward applied on the management NIC: %s", out)
		}
	})
	t.Run("re-applying an unchanged context changes nothing", func(t *testing.T) {
		countersBefore := lab.MustRun(t, nt.router, "iptables", "-t", "nat", "-L", "NAT4-DNAT", "-v", "-x", "-n")
		if !regexp.MustCompile(`(?m)^\s+[1-9]\d*\s+\d+\s+DNAT`).MatchString(countersBefore) {
			t.Fatalf("no DNAT counter moved:\n%s", countersBefore)
		}
		out, err := nt.one(t, "one-nat4", "start")
		if err != nil || !strings.Contains(out+lastErr(err), "") {
			t.Fatal(err)
		}
		if after := lab.MustRun(t, nt.router, "iptables", "-t", "nat", "-L", "NAT4-DNAT", "-v", "-x", "-n"); after != countersBefore {
			t.Fatalf("re-apply reset the chain:\nbefore\n%s\nafter\n%s", countersBefore, after)
		}
		if _, err := nt.one(t, "one-nat4", "status"); err != nil {
			t.Fatalf("status reports drift: %v", err)
		}
	})
	t.Run("bad input leaves the rules as they were", func(t *testing.T) {
		applied := rules(t, nt.router)
		for _, bad := range []string{
			"ONEAPP_VNF_NAT4_PORT_FWD3=80:x",
			"ONEAPP_VNF_NAT4_PORT_FWD3=1:2:3:4:5",
			"ONEAPP_VNF_NAT4_ENABLED=maybe",
			"ONEAPP_VNF_NAT4_INTERFACES_OUT=eth0 eth9",
			"ONEAPP_VNF_NAT4_PORT_FWD3=<ETH7_EP0>:80:10.0.0.12",
			"ONEAPP_VNF_NAT4_INTERFACES_OUT=eth0;touch /tmp/vrlab-pwned",
			"ONEAPP_VNF_NAT4_PORT_FWD3=$(touch /tmp/vrlab-pwned):80:10.0.0.12",
		} {
			_, err := nt.one(t, "one-nat4", "start", bad)
			if err == nil || !strings.Contains(err.Error(), "exit status 2") {
				t.Errorf("%s: want exit 2, got %v", bad, err)
			}
		}
		if got := rules(t, nt.router); got != applied {
			t.Fatalf("bad input changed the rules:\n%s", got)
		}
		if _, err := lab.Run(context.Background(), nt.router, "test", "-e", "/tmp/vrlab-pwned"); err == nil {
			t.Fatal("a context value was executed")
		}
	})
	t.Run("stop leaves iptables-save as it was before start", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if out, err := nt.one(t, "one-nat4", "stop"); err != nil {
				t.Fatalf("stop %d: %v %s", i, err, out)
			}
		}
		if got := rules(t, nt.router); got != beforeWithCanary {
			t.Fatalf("after stop:\n%s\nbefore start:\n%s", got, beforeWithCanary)
		}
	})
}

func lastErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestRouter4(t *testing.T) {
	nt := newNAT(t)
	fwd := func(nic string) string {
		return strings.TrimSpace(lab.MustRun(t, nt.router, "sysctl", "-n", "net.ipv4.conf."+nic+".forwarding"))
	}
	// A link another service made (one-wg's device, say) forwards too.
	lab.MustRun(t, nt.router, "ip", "link", "add", "vpn0", "type", "veth", "peer", "name", "vpn1")
	// The management NIC forwards before; the global switch is on.
	lab.MustRun(t, nt.router, "sysctl", "-qw", "net.ipv4.conf.all.forwarding=1")
	if out, err := nt.one(t, "one-nat4", "start"); err != nil {
		t.Fatal(err, out)
	}
	if out, err := nt.one(t, "one-router4", "start", "ONEAPP_VNF_ROUTER4_INTERFACES=eth0"); err != nil {
		t.Fatal(err, out)
	}
	if fwd("eth0") != "1" || fwd("eth1") != "0" || fwd("eth2") != "1" || fwd("vpn0") != "1" || fwd("all") != "0" {
		t.Fatalf("eth0=%s eth1=%s eth2(management)=%s vpn0(not Router4's)=%s all=%s", fwd("eth0"), fwd("eth1"), fwd("eth2"), fwd("vpn0"), fwd("all"))
	}
	// eth1 does not forward: the VM's traffic stops at the router.
	if out, err := probe(nt.vm1, "tcp", "203.0.113.100:7000"); err == nil {
		t.Fatalf("forwarded although eth1 is off: %s", out)
	}
	if out, err := nt.one(t, "one-router4", "start"); err != nil {
		t.Fatal(err, out)
	}
	if fwd("eth1") != "1" {
		t.Fatal("eth1 not forwarding")
	}
	if err := lab.Eventually(3*time.Second, 100*time.Millisecond, func() error {
		_, err := probe(nt.vm1, "tcp", "203.0.113.100:7000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	file, err := nt.router.ReadFile("/etc/sysctl.d/98-Router4.conf")
	if err != nil || !strings.Contains(string(file), "net.ipv4.conf.eth1.forwarding = 1") || strings.Contains(string(file), "eth2") {
		t.Fatalf("persisted file: %q %v", file, err)
	}
	if _, err := nt.one(t, "one-router4", "status"); err != nil {
		t.Fatalf("status: %v", err)
	}
	for i := 0; i < 2; i++ {
		if out, err := nt.one(t, "one-router4", "stop"); err != nil {
			t.Fatal(err, out)
		}
	}
	if fwd("eth0") != "0" || fwd("eth1") != "0" || fwd("eth2") != "1" {
		t.Fatalf("after stop eth0=%s eth1=%s eth2=%s", fwd("eth0"), fwd("eth1"), fwd("eth2"))
	}
	if _, err := nt.one(t, "one-router4", "status"); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("status after stop should report drift (exit 3): %v", err)
	}
}
