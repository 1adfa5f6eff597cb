package kernel

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/pkg/sdnat4"
	"github.com/hypercx/vrouter/tests/lab"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// sdnatTopology: the internet host on the router's eth0 (203.0.113.0/24),
// the fixture VMs 20, 21 and 22 and the router's eth1 on a private segment
// (10.0.1.0/24), and a "cloud" host running the OneGate simulator on a link
// of its own (og0, not a NIC of the context). The simulator serves the
// standard fixtures: VM 20 has the public address 203.0.113.20, VM 21
// 203.0.113.50 (from a reservation), VM 22 none.
type sdnatTopology struct {
	lab              *lab.Lab
	inet, vm20, vm22 *lab.Namespace
	vm21             *lab.Namespace
	router           *lab.Router
	gate             *sim.Process
}

const sdnatContext = `export ETH0_IP="203.0.113.2"
export ETH0_MASK="255.255.255.0"
export ETH1_IP="10.0.1.2"
export ETH1_MASK="255.255.255.0"
export ONEAPP_VNF_ROUTER4_ENABLED="YES"
export ONEAPP_VNF_NAT4_ENABLED="YES"
export ONEAPP_VNF_NAT4_INTERFACES_OUT="eth0"
export ONEAPP_VNF_SDNAT4_ENABLED="YES"
export ONEAPP_VNF_SDNAT4_INTERFACES="eth0 eth1"
export ONEAPP_VNF_SDNAT4_REFRESH_RATE="1"
export ONEGATE_ENDPOINT="http://169.254.16.9:5030"
export TOKENTXT="sdnat4-lab-token"
export VMID="10"
`

func newSDNAT(t *testing.T) *sdnatTopology {
	l := needLab(t)
	st := &sdnatTopology{lab: l}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	st.inet, err = l.Host("inet")
	must(err)
	st.vm20, err = l.Host("vm20")
	must(err)
	st.vm21, err = l.Host("vm21")
	must(err)
	st.vm22, err = l.Host("vm22")
	must(err)
	cloud, err := l.Host("cloud")
	must(err)
	st.router, err = l.Router("router")
	must(err)
	must(l.Link(st.inet, "eth0", st.router, "eth0"))
	must(lab.Addr(st.inet, "eth0", "203.0.113.100/24"))
	must(lab.Addr(st.router, "eth0", "203.0.113.2/24"))
	priv, err := l.Segment("private")
	must(err)
	must(priv.Attach(st.router, "eth1", "10.0.1.2/24"))
	for _, vm := range []struct {
		h    *lab.Namespace
		addr string
	}{{st.vm20, "10.0.1.20"}, {st.vm21, "10.0.1.21"}, {st.vm22, "10.0.1.22"}} {
		must(priv.Attach(vm.h, "eth0", vm.addr+"/24"))
		lab.MustRun(t, vm.h, "ip", "route", "add", "default", "via", "10.0.1.2")
		_, err := l.Start(vm.h, "nettool", "ready", lab.Bin("nettool"), "serve", "--tcp", ":80", "--udp", ":53", "--name", vm.h.Role)
		must(err)
		// Counts the echo requests the VM receives.
		lab.MustRun(t, vm.h, "iptables", "-A", "INPUT", "-p", "icmp", "--icmp-type", "echo-request", "-j", "ACCEPT")
	}
	_, err = l.Start(st.inet, "nettool", "ready", lab.Bin("nettool"), "serve", "--tcp", ":7000", "--udp", ":7000", "--name", "inet")
	must(err)
	must(l.Link(cloud, "gate0", st.router, "og0"))
	must(lab.Addr(cloud, "gate0", "169.254.16.9/24"))
	must(lab.Addr(st.router, "og0", "169.254.16.10/24"))
	st.gate, err = sim.Start(l, cloud, "169.254.16.9:5030", "sdnat4-lab-token", "")
	must(err)
	must(st.router.WriteFile("/run/one-context/one_env", []byte(sdnatContext), 0o400))
	return st
}

func (st *sdnatTopology) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return lab.Run(context.Background(), st.router, append([]string{lab.Bin("one-sdnat4")}, args...)...)
}

// loAddrs lists the addresses of lo: "<cidr> <label>".
func loAddrs(t *testing.T, h lab.Host) []string {
	t.Helper()
	out := lab.MustRun(t, h, "ip", "-4", "-o", "addr", "show", "dev", "lo")
	var addrs []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		// "1: lo    inet 10.2.11.201/32 scope global SDNAT4\       valid_lft ..."
		l, _, _ = strings.Cut(l, "\\")
		f := strings.Fields(l)
		if len(f) >= 5 {
			addrs = append(addrs, f[3]+" "+f[len(f)-1])
		}
	}
	slices.Sort(addrs)
	return addrs
}

// mapped lists the public addresses SDNAT4 holds on lo.
func mapped(t *testing.T, h lab.Host) []string {
	t.Helper()
	var out []string
	for _, a := range loAddrs(t, h) {
		if strings.HasSuffix(a, " SDNAT4") {
			out = append(out, strings.TrimSuffix(a, "/32 SDNAT4"))
		}
	}
	return out
}

var pingCount = regexp.MustCompile(`(?m)^\s*(\d+)\s+\d+\s+ACCEPT\s+(1|icmp)\b`)

// echoes is how many echo requests h received.
func echoes(t *testing.T, h lab.Host) int {
	t.Helper()
	m := pingCount.FindStringSubmatch(lab.MustRun(t, h, "iptables", "-nvxL", "INPUT"))
	if m == nil {
		t.Fatal("no ICMP counter in the VM")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	if err := lab.Eventually(20*time.Second, 100*time.Millisecond, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantMapped(t *testing.T, st *sdnatTopology, want ...string) {
	t.Helper()
	eventually(t, "lo addresses", func() error {
		if got := mapped(t, st.router); !slices.Equal(got, want) {
			return fmt.Errorf("SDNAT4 addresses on lo: %v, want %v", got, want)
		}
		return nil
	})
}

func TestSDNAT4(t *testing.T) {
	st := newSDNAT(t)
	for _, svc := range []string{"one-router4", "one-nat4"} {
		if out, err := lab.Run(context.Background(), st.router, lab.Bin(svc), "start"); err != nil {
			t.Fatalf("%s start: %v\n%s", svc, err, out)
		}
	}
	// Someone else's rule and address, which must survive everything.
	lab.MustRun(t, st.router, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.0/24", "-j", "RETURN")
	lab.MustRun(t, st.router, "ip", "addr", "add", "198.51.100.99/32", "dev", "lo")
	rulesBefore, loBefore := rules(t, st.router), loAddrs(t, st.router)

	t.Run("invalid context exits 2 naming the variable and changes nothing", func(t *testing.T) {
		for _, bad := range []string{"ONEAPP_VNF_SDNAT4_REFRESH_RATE=abc", "ONEAPP_VNF_SDNAT4_INTERFACES=eth0 eth9", "ONEGATE_ENDPOINT="} {
			out, err := lab.Run(context.Background(), st.router, "env", bad, lab.Bin("one-sdnat4"), "start")
			name, _, _ := strings.Cut(bad, "=")
			if err == nil || !strings.Contains(err.Error(), "exit status 2") || !strings.Contains(err.Error(), name) {
				t.Errorf("%s: %v %s", bad, err, out)
			}
		}
		if rules(t, st.router) != rulesBefore || !slices.Equal(loAddrs(t, st.router), loBefore) {
			t.Fatal("a bad context changed the kernel")
		}
	})

	// The internet host still thinks 203.0.113.20 is elsewhere (a former
	// master): the mapping's gratuitous ARP must correct it, with no
	// traffic that would make it ask.
	lab.MustRun(t, st.inet, "ip", "neigh", "replace", "203.0.113.20", "lladdr", "02:00:00:00:00:99", "dev", "eth0", "nud", "stale")
	daemon, err := st.lab.Start(st.router, "one-sdnat4", "mappings applied", lab.Bin("one-sdnat4"), "--debug", "start")
	if err != nil {
		t.Fatal(err)
	}
	wantMapped(t, st, "203.0.113.20", "203.0.113.50")
	t.Run("new public addresses are announced by gratuitous ARP", func(t *testing.T) {
		link := lab.MustRun(t, st.router, "ip", "-o", "link", "show", "dev", "eth0")
		_, rest, _ := strings.Cut(link, "link/ether ")
		mac, _, _ := strings.Cut(rest, " ")
		eventually(t, "the internet host's ARP entry for 203.0.113.20", func() error {
			if n := lab.MustRun(t, st.inet, "ip", "neigh", "show", "203.0.113.20", "dev", "eth0"); !strings.Contains(n, "lladdr "+mac) {
				return fmt.Errorf("%q, want the router's %s", strings.TrimSpace(n), mac)
			}
			return nil
		})
	})

	t.Run("the internet reaches a VM through its public address (TCP, UDP, ICMP)", func(t *testing.T) {
		expect(t, st.inet, "tcp", "203.0.113.20:80", "name=vm20", "local=10.0.1.20:80", "peer=203.0.113.100:")
		expect(t, st.inet, "udp", "203.0.113.20:53", "name=vm20", "peer=203.0.113.100:")
		expect(t, st.inet, "tcp", "203.0.113.50:80", "name=vm21", "local=10.0.1.21:80")
		before := echoes(t, st.vm20)
		lab.MustRun(t, st.inet, "ping", "-c", "2", "-W", "2", "203.0.113.20")
		if after := echoes(t, st.vm20); after < before+2 {
			t.Fatalf("the VM got %d of 2 echo requests (the router answered them itself?)", after-before)
		}
	})
	t.Run("a mapped VM's traffic leaves with its public address, ahead of NAT4", func(t *testing.T) {
		expect(t, st.vm20, "tcp", "203.0.113.100:7000", "name=inet", "peer=203.0.113.20:")
		expect(t, st.vm20, "udp", "203.0.113.100:7000", "name=inet", "peer=203.0.113.20:")
		expect(t, st.vm21, "tcp", "203.0.113.100:7000", "peer=203.0.113.50:")
		// VM 22 has no public address: NAT4 masquerades it.
		expect(t, st.vm22, "tcp", "203.0.113.100:7000", "peer=203.0.113.2:")
		post := lab.MustRun(t, st.router, "iptables", "-t", "nat", "-S", "POSTROUTING")
		if !strings.HasPrefix(strings.Split(post, "\n")[1], "-A POSTROUTING -m comment --comment one-sdnat4 -j SNAT4") {
			t.Fatalf("SNAT4 is not hooked first:\n%s", post)
		}
	})
	t.Run("hairpin: VMs reach their neighbours' public addresses", func(t *testing.T) {
		expect(t, st.vm21, "tcp", "203.0.113.20:80", "name=vm20", "peer=203.0.113.50:")
		expect(t, st.vm22, "tcp", "203.0.113.20:80", "name=vm20", "peer=10.0.1.2:")
		expect(t, st.vm20, "udp", "203.0.113.50:53", "name=vm21", "peer=203.0.113.20:")
	})
	t.Run("status: live state matches OneGate", func(t *testing.T) {
		if out, err := st.run(t, "status"); err != nil || !strings.Contains(out, "203.0.113.20 -> 10.0.1.20") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("a rule inserted ahead of the jumps: they move back to the head within a refresh, the rule stays", func(t *testing.T) {
		for _, c := range []string{"PREROUTING", "POSTROUTING"} {
			lab.MustRun(t, st.router, "iptables", "-t", "nat", "-I", c, "1", "-s", "192.0.2.7/32", "-j", "RETURN")
		}
		eventually(t, "the jumps first again", func() error {
			for c, to := range map[string]string{"PREROUTING": "DNAT4", "POSTROUTING": "SNAT4"} {
				rules := strings.Split(lab.MustRun(t, st.router, "iptables", "-t", "nat", "-S", c), "\n")
				if len(rules) < 3 || rules[1] != "-A "+c+" -m comment --comment one-sdnat4 -j "+to {
					return fmt.Errorf("%s:\n%s", c, strings.Join(rules, "\n"))
				}
				if !slices.Contains(rules, "-A "+c+" -s 192.0.2.7/32 -j RETURN") {
					t.Fatalf("the other rule is gone from %s:\n%s", c, strings.Join(rules, "\n"))
				}
			}
			return nil
		})
		for _, c := range []string{"PREROUTING", "POSTROUTING"} {
			lab.MustRun(t, st.router, "iptables", "-t", "nat", "-D", c, "-s", "192.0.2.7/32", "-j", "RETURN")
		}
	})
	t.Run("an alias removed in OneGate disappears within a refresh, its connections too", func(t *testing.T) {
		hold, err := st.lab.Start(st.inet, "hold", "connected", lab.Bin("nettool"), "hold", "203.0.113.20:80",
			"--interval", "100ms", "--duration", "20s", "--timeout", "2s")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.gate.WriteDocument("vm-20", []byte(vm20WithoutAlias)); err != nil {
			t.Fatal(err)
		}
		wantMapped(t, st, "203.0.113.50")
		eventually(t, "the established connection ended", func() error {
			if !hold.Exited() {
				return fmt.Errorf("still going: %s", lastLine(hold.Output()))
			}
			return nil
		})
		if hold.Wait() == nil {
			t.Fatalf("the connection outlived its mapping: %s", hold.Output())
		}
		if dnat := lab.MustRun(t, st.router, "iptables", "-t", "nat", "-S", "DNAT4"); strings.Contains(dnat, "203.0.113.20") {
			t.Fatalf("DNAT4 still maps it:\n%s", dnat)
		}
		expect(t, st.vm20, "tcp", "203.0.113.100:7000", "peer=203.0.113.2:")
	})
	t.Run("an alias added in OneGate appears within a refresh", func(t *testing.T) {
		// DNAT4 gains a rule: patched in place, the rule that stays keeps
		// its counters.
		expect(t, st.inet, "tcp", "203.0.113.50:80", "name=vm21")
		hits := natPackets(t, st.router, "DNAT4", "203.0.113.50")
		if hits == 0 {
			t.Fatal("the connection did not count in DNAT4")
		}
		for name, doc := range map[string]string{"vm-22": vm22WithAlias, "vnet-0": vnet0WithVM22} {
			if err := st.gate.WriteDocument(name, []byte(doc)); err != nil {
				t.Fatal(err)
			}
		}
		wantMapped(t, st, "203.0.113.22", "203.0.113.50")
		expect(t, st.inet, "tcp", "203.0.113.22:80", "name=vm22", "local=10.0.1.22:80")
		expect(t, st.vm22, "udp", "203.0.113.100:7000", "peer=203.0.113.22:")
		if n := natPackets(t, st.router, "DNAT4", "203.0.113.50"); n < hits {
			t.Fatalf("the rule of 203.0.113.50 counts %d packets, had %d: DNAT4 was rewritten, not patched", n, hits)
		}
	})
	t.Run("a OneGate outage keeps every mapping", func(t *testing.T) {
		failures := strings.Count(daemon.Output(), "OneGate failed")
		if err := st.gate.SetFaults(sim.Fault{Status: 503}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "two polls during the outage", func() error {
			if n := strings.Count(daemon.Output(), "OneGate failed") - failures; n < 2 {
				return fmt.Errorf("%d failed polls so far", n)
			}
			return nil
		})
		wantMapped(t, st, "203.0.113.22", "203.0.113.50")
		expect(t, st.inet, "tcp", "203.0.113.22:80", "name=vm22")
		expect(t, st.inet, "tcp", "203.0.113.50:80", "name=vm21")
		// Even when OneGate stops answering altogether.
		st.gate.Proc.Stop()
		failures = strings.Count(daemon.Output(), "OneGate failed")
		eventually(t, "a poll with OneGate gone", func() error {
			if strings.Count(daemon.Output(), "OneGate failed") == failures {
				return fmt.Errorf("no failed poll yet")
			}
			return nil
		})
		wantMapped(t, st, "203.0.113.22", "203.0.113.50")
		expect(t, st.inet, "udp", "203.0.113.50:53", "name=vm21")
	})
	t.Run("stop leaves nothing behind", func(t *testing.T) {
		if strings.Contains(daemon.Output(), "sdnat4-lab-token") {
			t.Error("the daemon logged the OneGate token")
		}
		daemon.Stop()
		if len(mapped(t, st.router)) != 2 {
			t.Fatal("the daemon's exit removed the mappings (stop does)")
		}
		// A daemon started while OneGate is still gone maps from the
		// answers the last one kept on disk; `stop` ends it, then removes
		// everything.
		again, err := st.lab.Start(st.router, "one-sdnat4", "answer kept on disk", lab.Bin("one-sdnat4"), "start")
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "a poll of the restarted daemon", func() error {
			if !strings.Contains(again.Output(), "OneGate failed; using its last good answers") {
				return fmt.Errorf("no poll yet")
			}
			return nil
		})
		wantMapped(t, st, "203.0.113.22", "203.0.113.50")
		for i := 0; i < 2; i++ {
			if out, err := st.run(t, "stop"); err != nil {
				t.Fatalf("stop %d: %v\n%s", i, err, out)
			}
			if got := rules(t, st.router); got != rulesBefore {
				t.Fatalf("stop %d: iptables differs:\n%s\nwant\n%s", i, got, rulesBefore)
			}
			if got := loAddrs(t, st.router); !slices.Equal(got, loBefore) {
				t.Fatalf("stop %d: lo is %v, want %v", i, got, loBefore)
			}
			if !again.Exited() {
				t.Fatal("stop did not end the running daemon")
			}
		}
		// With nothing kept (a router that never ran the daemon), a daemon
		// OneGate never answered changes nothing.
		lab.MustRun(t, st.router, "rm", "-r", sdnat4.KeepDir)
		fresh, err := st.lab.Start(st.router, "one-sdnat4", "has never answered", lab.Bin("one-sdnat4"), "start")
		if err != nil {
			t.Fatal(err)
		}
		if got := mapped(t, st.router); len(got) != 0 {
			t.Fatalf("a daemon OneGate never answered mapped %v", got)
		}
		if out, err := st.run(t, "stop"); err != nil || !fresh.Exited() {
			t.Fatalf("stop: %v (daemon ended: %t)\n%s", err, fresh.Exited(), out)
		}
	})
}

// TestSDNAT4OpenRC installs one-sdnat4 with its own install verb and drives
// it through OpenRC: start (mappings appear), reload, stop (nothing left),
// the log in /var/log/one-appliance.
func TestSDNAT4OpenRC(t *testing.T) {
	st := newSDNAT(t)
	if err := st.router.Install("one-sdnat4"); err != nil {
		t.Fatal(err)
	}
	lab.MustRun(t, st.router, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.0/24", "-j", "RETURN")
	rulesBefore, loBefore := rules(t, st.router), loAddrs(t, st.router)
	if out, err := st.router.RC("one-sdnat4", "start"); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	wantMapped(t, st, "203.0.113.20", "203.0.113.50")
	if out, err := st.router.RC("one-sdnat4", "reload"); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	eventually(t, "the reload in the log", func() error {
		log, _ := st.router.ReadFile("/var/log/one-appliance/one-sdnat4.log")
		if !strings.Contains(string(log), "context reloaded") || !strings.Contains(string(log), "mappings applied") {
			return fmt.Errorf("log:\n%s", log)
		}
		return nil
	})
	// A restart hands the mappings over to the new daemon: they stay,
	// even while OneGate is down (it uses the answers kept on disk). A stop
	// and a start during the outage (one-failover's BACKUP then MASTER)
	// map them again from those answers.
	if err := st.gate.SetFaults(sim.Fault{Status: 503}); err != nil {
		t.Fatal(err)
	}
	const logFile = "/var/log/one-appliance/one-sdnat4.log"
	for _, verbs := range [][]string{{"restart"}, {"stop", "start"}} {
		log0, _ := st.router.ReadFile(logFile)
		for _, verb := range verbs {
			if out, err := st.router.RC("one-sdnat4", verb); err != nil {
				t.Fatalf("%s: %v\n%s", verb, err, out)
			}
		}
		eventually(t, "the new daemon's first poll after "+strings.Join(verbs, " and "), func() error {
			log, _ := st.router.ReadFile(logFile)
			if !strings.Contains(string(log[len(log0):]), "OneGate failed; using its last good answers") {
				return fmt.Errorf("log:\n%s", log[len(log0):])
			}
			return nil
		})
		wantMapped(t, st, "203.0.113.20", "203.0.113.50")
	}
	if err := st.gate.SetFaults(); err != nil {
		t.Fatal(err)
	}
	if out, err := st.router.RC("one-sdnat4", "stop"); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	if got := rules(t, st.router); got != rulesBefore {
		t.Fatalf("iptables after stop:\n%s", got)
	}
	if got := loAddrs(t, st.router); !slices.Equal(got, loBefore) {
		t.Fatalf("lo after stop: %v", got)
	}
	// An invalid context fails the start and names the variable.
	bad := sdnatContext + "export ONEAPP_VNF_SDNAT4_REFRESH_RATE=\"0\"\n"
	if err := st.router.WriteFile("/run/one-context/one_env", []byte(bad), 0o400); err != nil {
		t.Fatal(err)
	}
	if out, err := st.router.RC("one-sdnat4", "start"); err == nil {
		t.Fatalf("start with a bad context succeeded: %s", out)
	}
	log, _ := st.router.ReadFile("/var/log/one-appliance/one-sdnat4.log")
	if !strings.Contains(string(log), "ONEAPP_VNF_SDNAT4_REFRESH_RATE") {
		t.Fatalf("the log does not name the variable:\n%s", log)
	}
}

// Fixture documents changed while the daemon runs.
const (
	vm20WithoutAlias = `{"VM": {"ID": "20", "NAME": "web", "STATE": "3", "LCM_STATE": "3", "USER_TEMPLATE": {},
  "TEMPLATE": {"CONTEXT": {"NETWORK": "YES"},
    "NIC": {"NIC_ID": "0", "NAME": "NIC0", "NETWORK": "private", "NETWORK_ID": "1", "IP": "10.0.1.20", "MAC": "02:00:0a:00:01:14"}}}}`
	vm22WithAlias = `{"VM": {"ID": "22", "NAME": "backend-haproxy", "STATE": "3", "LCM_STATE": "3", "USER_TEMPLATE": {"SERVICE_ID": "7"},
  "TEMPLATE": {"CONTEXT": {"NETWORK": "YES"},
    "NIC": [{"NIC_ID": "0", "NAME": "NIC0", "NETWORK": "private", "NETWORK_ID": "1", "IP": "10.0.1.22", "MAC": "02:00:0a:00:01:16"}],
    "NIC_ALIAS": [{"NIC_ID": "1", "NAME": "NIC0_ALIAS1", "PARENT": "NIC0", "PARENT_ID": "0", "EXTERNAL": "YES",
      "NETWORK": "public", "NETWORK_ID": "0", "IP": "203.0.113.22", "MAC": "02:00:cb:00:71:16"}]}}}`
	vnet0WithVM22 = `{"VNET": {"ID": "0", "NAME": "public", "PARENT_NETWORK_ID": {}, "VROUTERS": {"ID": "3"},
  "TEMPLATE": {"NETWORK_ADDRESS": "203.0.113.0", "NETWORK_MASK": "255.255.255.0"},
  "AR_POOL": {"AR": {"AR_ID": "0", "TYPE": "IP4", "IP": "203.0.113.1", "SIZE": "100", "LEASES": {"LEASE": [
    {"IP": "203.0.113.1", "MAC": "02:00:cb:00:71:01", "VROUTER": "3"},
    {"IP": "203.0.113.2", "MAC": "02:00:cb:00:71:02", "VM": "10"},
    {"IP": "203.0.113.3", "MAC": "02:00:cb:00:71:03", "VM": "11"},
    {"IP": "203.0.113.20", "MAC": "02:00:cb:00:71:14", "VM": "20"},
    {"IP": "203.0.113.22", "MAC": "02:00:cb:00:71:16", "VM": "22"},
    {"IP": "203.0.113.50", "MAC": "02:00:cb:00:71:32", "VNET": "2"},
    {"IP": "203.0.113.51", "MAC": "02:00:cb:00:71:33", "VNET": "2"}]}}}}}`
)

// natPackets is the packet counter of the rule of chain (nat table) that
// mentions addr.
func natPackets(t *testing.T, h lab.Host, chain, addr string) int {
	t.Helper()
	for _, l := range strings.Split(lab.MustRun(t, h, "iptables", "-t", "nat", "-nvxL", chain), "\n") {
		if f := strings.Fields(l); len(f) > 0 && slices.Contains(f, addr) {
			n, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			return n
		}
	}
	t.Fatalf("no rule of %s mentions %s", chain, addr)
	return 0
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
