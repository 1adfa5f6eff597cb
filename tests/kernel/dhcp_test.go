package kernel

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// dhcpContext: the router's eth1 on a private segment (10.0.0.0/24) serves
// DHCP with no gateway or DNS set by hand (one-apps #262, #270): the router
// comes from its EP0, the DNS from the context's DNS variable. eth0 is
// served too (the default is every NIC) but nobody asks there.
const dhcpContext = `export ETH0_IP="203.0.113.1"
export ETH0_MASK="255.255.255.0"
export ETH1_IP="10.0.0.1"
export ETH1_MASK="255.255.255.0"
export DNS="9.9.9.9"
export ONEAPP_VNF_DHCP4_ENABLED="YES"
export ONEAPP_VNF_DHCP4_LEASE_TIME="1200"
export ONEAPP_VNF_DHCP4_ETH1_MTU="1400"
`

// dhcpVM is a VM on a segment with busybox udhcpc as its DHCP client.
type dhcpVM struct {
	ns *lab.Namespace
	*lab.DHCPClient
}

// newDHCPVM attaches a VM with the given MAC to seg, without an address;
// its client only reports the leases it gets.
func newDHCPVM(t *testing.T, l *lab.Lab, seg *lab.Segment, name, mac string) *dhcpVM {
	t.Helper()
	ns, err := l.Host(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := seg.Attach(ns, "eth0"); err != nil {
		t.Fatal(err)
	}
	lab.MustRun(t, ns, "ip", "link", "set", "eth0", "address", mac)
	c, err := l.DHCPClient(ns, "eth0", false)
	if err != nil {
		t.Fatal(err)
	}
	return &dhcpVM{ns: ns, DHCPClient: c}
}

// lease runs the client once.
func (v *dhcpVM) lease(extra ...string) (map[string]string, error) { return v.Lease(extra...) }

func (v *dhcpVM) mustLease(t *testing.T, want map[string]string, extra ...string) map[string]string {
	t.Helper()
	got, err := v.lease(extra...)
	if err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s=%q, want %q (lease %v)", v.ns.Netns(), k, got[k], w, got)
		}
	}
	return got
}

func needDHCPTools(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("busybox", "udhcpc", "--help").CombinedOutput(); err != nil && !strings.Contains(string(out), "udhcpc") {
		t.Skip("DHCP test skipped: needs busybox with udhcpc (scripts/install-deps.sh installs it)")
	}
}

// dhcpRouter starts one-dhcp4v2 in the foreground inside r.
func dhcpRouter(t *testing.T, l *lab.Lab, r *lab.Router) *lab.Proc {
	t.Helper()
	p, err := l.Start(r, "one-dhcp4v2", "serving DHCP", lab.Bin("one-dhcp4v2"), "--debug", "start")
	if err != nil {
		t.Fatalf("one-dhcp4v2 start: %v", err)
	}
	// Both NICs up before a client asks.
	if err := lab.Eventually(10*time.Second, 20*time.Millisecond, func() error {
		if strings.Count(p.Output(), "serving DHCP") < 2 {
			return fmt.Errorf("not serving both NICs: %s", p.Output())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDHCP(t *testing.T) {
	l := needLab(t)
	needDHCPTools(t)
	r, err := l.Router("router")
	if err != nil {
		t.Fatal(err)
	}
	inet, err := l.Host("inet")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Link(inet, "eth0", r, "eth0"); err != nil {
		t.Fatal(err)
	}
	priv, err := l.Segment("private")
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(lab.Addr(r, "eth0", "203.0.113.1/24"))
	must(priv.Attach(r, "eth1", "10.0.0.1/24"))
	must(r.WriteFile("/run/one-context/one_env", []byte(dhcpContext), 0o400))
	vm := newDHCPVM(t, l, priv, "vm", "02:00:0a:00:00:0c")
	// A cloud NIC whose MAC2IP address (10.0.1.0) is not on this network.
	other := newDHCPVM(t, l, priv, "other", "02:00:0a:00:01:00")
	foreign := newDHCPVM(t, l, priv, "foreign", "52:54:00:12:34:56")
	d := dhcpRouter(t, l, r)

	want := map[string]string{"ip": "10.0.0.12", "subnet": "255.255.255.0", "router": "10.0.0.1", "dns": "9.9.9.9",
		"mtu": "1400", "lease": "1200", "serverid": "10.0.0.1"}
	t.Run("MAC2IP: 02:00:0a:00:00:0c gets 10.0.0.12 with router, DNS, MTU and lease time", func(t *testing.T) {
		vm.mustLease(t, want)
	})
	var dynamic string
	t.Run("a MAC2IP miss gets a dynamic address from the top of the pool", func(t *testing.T) {
		dynamic = other.mustLease(t, map[string]string{"ip": "10.0.0.254", "router": "10.0.0.1"})["ip"]
	})
	t.Run("a pool address another host answers ARP for is not offered", func(t *testing.T) {
		// A client of the other router after a failover: it holds
		// 10.0.0.253, the next address of the pool, without a lease of
		// this server. The ARP probe finds it; the next client gets
		// 10.0.0.252 and the address stays out of the pool.
		squatter, err := l.Host("squatter")
		must(err)
		must(priv.Attach(squatter, "eth0", "10.0.0.253/24"))
		next := newDHCPVM(t, l, priv, "next", "02:00:0a:00:01:01")
		next.mustLease(t, map[string]string{"ip": "10.0.0.252"})
		if !strings.Contains(d.Output(), "address in use on the link without a lease of this server") || !strings.Contains(d.Output(), "ip=10.0.0.253") {
			t.Fatalf("the conflict is not logged:\n%s", d.Output())
		}
	})
	t.Run("a MAC without the MAC2IP prefix gets no lease", func(t *testing.T) {
		if got, err := foreign.lease("-t", "2"); err == nil {
			t.Fatalf("52:54:00:12:34:56 got a lease: %v", got)
		}
		if !strings.Contains(d.Output(), "no lease: the MAC lacks the MAC2IP prefix 02:00") || d.Exited() {
			t.Fatalf("server output:\n%s", d.Output())
		}
	})
	t.Run("leases are written to the lease file", func(t *testing.T) {
		b, err := r.ReadFile("/var/lib/one-appliance/dhcp4/leases-eth1.log")
		if err != nil || !strings.Contains(string(b), "bound 02:00:0a:00:00:0c 10.0.0.12 ") || !strings.Contains(string(b), "02:00:0a:00:01:00 10.0.0.254") || !regexp.MustCompile(`(?m)^declined ([0-9a-f]{2}:){5}[0-9a-f]{2} 10\.0\.0\.253 `).Match(b) || strings.Contains(string(b), "52:54:00") {
			t.Fatalf("lease file: %v\n%s", err, b)
		}
	})
	t.Run("status: running, serving what the context says", func(t *testing.T) {
		out, err := lab.Run(context.Background(), r, lab.Bin("one-dhcp4v2"), "status")
		if err != nil || !strings.Contains(out, "eth1: pool 10.0.0.1-10.0.0.254") || !strings.Contains(out, "active leases 3") {
			t.Fatalf("status: %v\n%s", err, out)
		}
	})
	t.Run("malformed packets do not hurt the server", func(t *testing.T) {
		// Datagrams that are not DHCP at all, to the server's port, from an
		// address on its network (the traffic helper sends "probe\n").
		lab.MustRun(t, other.ns, "ip", "addr", "add", "10.0.0.99/24", "dev", "eth0")
		_, _ = lab.Run(context.Background(), other.ns, lab.Bin("nettool"), "probe", "udp", "10.0.0.1:67", "--timeout", "300ms")
		lab.MustRun(t, other.ns, "ip", "addr", "flush", "dev", "eth0")
		if d.Exited() {
			t.Fatalf("the server died: %s", d.Output())
		}
		if !strings.Contains(d.Output(), "dropped a malformed packet") {
			t.Errorf("the probe never reached the server:\n%s", d.Output())
		}
		vm.mustLease(t, want)
	})
	t.Run("a restart keeps the leases", func(t *testing.T) {
		d.Stop()
		if !strings.Contains(d.Output(), "DHCP servers stopped") {
			t.Errorf("SIGTERM was not a clean stop:\n%s", d.Output())
		}
		d = dhcpRouter(t, l, r)
		other.mustLease(t, map[string]string{"ip": dynamic})
		// Three leases and the address found in use.
		if !strings.Contains(d.Output(), "active=4") {
			t.Errorf("leases not loaded:\n%s", d.Output())
		}
	})
	t.Run("SIGHUP re-reads the configuration written by configure", func(t *testing.T) {
		ctx2 := strings.Replace(dhcpContext, `ONEAPP_VNF_DHCP4_ETH1_MTU="1400"`, `ONEAPP_VNF_DHCP4_ETH1_MTU="1300"
export ONEAPP_VNF_DHCP4_ETH1_DNS="10.0.0.1 1.1.1.1"`, 1)
		must(r.WriteFile("/run/one-context/one_env", []byte(ctx2), 0o400))
		if out, err := lab.Run(context.Background(), r, lab.Bin("one-dhcp4v2"), "configure"); err != nil {
			t.Fatalf("configure: %v %s", err, out)
		}
		lab.MustRun(t, r, "pkill", "-HUP", "-x", "one-dhcp4v2")
		if err := lab.Eventually(10*time.Second, 20*time.Millisecond, func() error {
			if !strings.Contains(d.Output(), "started=[eth1]") {
				return fmt.Errorf("not reloaded")
			}
			return nil
		}); err != nil {
			t.Fatalf("%v:\n%s", err, d.Output())
		}
		if !strings.Contains(d.Output(), "unchanged=[eth0]") {
			t.Errorf("eth0's server was restarted although unchanged:\n%s", d.Output())
		}
		w := map[string]string{"ip": "10.0.0.12", "mtu": "1300", "dns": "10.0.0.1 1.1.1.1"}
		vm.mustLease(t, w)
	})
	t.Run("bad input: exit 2 naming the variable; the live file and daemon stay", func(t *testing.T) {
		before, _ := r.ReadFile("/etc/one-appliance/service.d/VRRouter/DHCP4v2/coredhcp-onelease/onelease-config.yml")
		for _, bad := range []string{
			"ONEAPP_VNF_DHCP4_ETH1=10.0.0.0/24:10.0.0.200-10.0.0.100",
			"ONEAPP_VNF_DHCP4_ETH1=10.9.0.0/24:10.9.0.1-10.9.0.9",
			"ONEAPP_VNF_DHCP4_MAC2IP_MACPREFIX=02-00",
			"ONEAPP_VNF_DHCP4_ETH1_MTU=10",
			"ONEAPP_VNF_DHCP4_GATEWAY=gateway.example",
		} {
			out, err := lab.Run(context.Background(), r, "env", bad, lab.Bin("one-dhcp4v2"), "configure")
			name, _, _ := strings.Cut(bad, "=")
			if err == nil || !strings.Contains(err.Error(), "exit status 2") || !strings.Contains(err.Error()+out, name) {
				t.Errorf("%s: want exit 2 naming %s, got %v %s", bad, name, err, out)
			}
		}
		after, _ := r.ReadFile("/etc/one-appliance/service.d/VRRouter/DHCP4v2/coredhcp-onelease/onelease-config.yml")
		if string(after) != string(before) {
			t.Error("bad input changed the live file")
		}
		vm.mustLease(t, map[string]string{"ip": "10.0.0.12"})
	})
	t.Run("a second daemon in the same router refuses to start", func(t *testing.T) {
		out, err := lab.Run(context.Background(), r, lab.Bin("one-dhcp4v2"), "start")
		if err == nil || !strings.Contains(err.Error()+out, "another one-dhcp4v2 is running") {
			t.Fatalf("second start: %v %s", err, out)
		}
	})
	t.Run("stop ends the daemon; status then reports drift", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if out, err := lab.Run(context.Background(), r, lab.Bin("one-dhcp4v2"), "stop"); err != nil {
				t.Fatalf("stop %d: %v %s", i, err, out)
			}
		}
		if err := lab.Eventually(5*time.Second, 20*time.Millisecond, func() error {
			if !d.Exited() {
				return fmt.Errorf("still running")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := lab.Run(context.Background(), r, lab.Bin("one-dhcp4v2"), "status"); err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("status after stop: %v", err)
		}
		if _, err := vm.lease("-t", "2"); err == nil {
			t.Fatal("a lease without a server")
		}
	})
}

// TestDHCPOpenRC: two router instances side by side, each with its own
// segment, VM, OpenRC and lease files; one-dhcp4v2 installed with its own
// install verb and driven by rc-service (start, reload, stop).
func TestDHCPOpenRC(t *testing.T) {
	l := needLab(t)
	needDHCPTools(t)
	for _, tool := range []string{"rc-service", "supervise-daemon"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("OpenRC DHCP test skipped: needs %s (scripts/install-deps.sh installs it)", tool)
		}
	}
	type site struct {
		r  *lab.Router
		vm *dhcpVM
	}
	var sites []site
	for i, name := range []string{"vr1", "vr2"} {
		r, err := l.Router(name)
		if err != nil {
			t.Fatal(err)
		}
		seg, err := l.Segment("net" + name)
		if err != nil {
			t.Fatal(err)
		}
		// The same subnet and the same VM MAC on both: nothing is shared.
		if err := seg.Attach(r, "eth1", "10.0.0.1/24"); err != nil {
			t.Fatal(err)
		}
		ctx := fmt.Sprintf("export ETH1_IP=\"10.0.0.1\"\nexport ETH1_MASK=\"255.255.255.0\"\nexport ONEAPP_VNF_DHCP4_ENABLED=\"YES\"\nexport ONEAPP_VNF_DHCP4_DNS=\"10.0.0.%d\"\n", 53+i)
		if err := r.WriteFile("/run/one-context/one_env", []byte(ctx), 0o400); err != nil {
			t.Fatal(err)
		}
		if err := r.Install("one-dhcp4v2"); err != nil {
			t.Fatal(err)
		}
		sites = append(sites, site{r, newDHCPVM(t, l, seg, "vm"+name, "02:00:0a:00:00:0c")})
	}
	for _, s := range sites {
		if out, err := s.r.RC("one-dhcp4v2", "start"); err != nil {
			t.Fatalf("rc-service one-dhcp4v2 start: %v %s", err, out)
		}
	}
	for i, s := range sites {
		var got map[string]string
		if err := lab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
			var err error
			got, err = s.vm.lease()
			return err
		}); err != nil {
			log, _ := s.r.ReadFile("/var/log/one-appliance/one-dhcp4v2.log")
			t.Fatalf("%s: %v\nlog:\n%s", s.r.Netns(), err, log)
		}
		if got["ip"] != "10.0.0.12" || got["dns"] != fmt.Sprintf("10.0.0.%d", 53+i) {
			t.Errorf("%s: lease %v", s.r.Netns(), got)
		}
	}
	s := sites[0]
	ctx := "export ETH1_IP=\"10.0.0.1\"\nexport ETH1_MASK=\"255.255.255.0\"\nexport ONEAPP_VNF_DHCP4_ENABLED=\"YES\"\nexport ONEAPP_VNF_DHCP4_DNS=\"10.0.0.99\"\n"
	if err := s.r.WriteFile("/run/one-context/one_env", []byte(ctx), 0o400); err != nil {
		t.Fatal(err)
	}
	if out, err := s.r.RC("one-dhcp4v2", "reload"); err != nil {
		t.Fatalf("reload: %v %s", err, out)
	}
	if err := lab.Eventually(10*time.Second, 200*time.Millisecond, func() error {
		got, err := s.vm.lease()
		if err == nil && got["dns"] != "10.0.0.99" {
			err = fmt.Errorf("dns %s", got["dns"])
		}
		return err
	}); err != nil {
		t.Fatalf("after reload: %v", err)
	}
	if out, err := lab.Run(context.Background(), s.r, "one-dhcp4v2", "status"); err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, s := range sites {
		if out, err := s.r.RC("one-dhcp4v2", "stop"); err != nil {
			t.Fatalf("stop: %v %s", err, out)
		}
	}
	if _, err := s.vm.lease(); err == nil {
		t.Fatal("a lease after rc-service stop")
	}
	log, err := s.r.ReadFile("/var/log/one-appliance/one-dhcp4v2.log")
	if !strings.Contains(string(log), "msg=lease service=one-dhcp4v2 mac=02:00:0a:00:00:0c ip=10.0.0.12") {
		t.Errorf("log lacks the lease: %v\n%s", err, log)
	}
}

// TestDHCPVMResolves is the path of issue 6 end to end, both services
// under OpenRC in one router instance and nothing set by hand (one-apps
// #262, #270): the VM with MAC 02:00:0a:00:00:0c configures itself with
// busybox udhcpc and gets 10.0.0.12, the router as gateway and as
// nameserver (one-dns serves eth1, so it wins over the context's DNS), the
// MTU and the lease time; from that configuration alone it resolves a
// public name through the forwarder on the internet host and the router's
// own ep0.eth0.vr. The public side is refused.
func TestDHCPVMResolves(t *testing.T) {
	d := newDNSTopology(t)
	needDHCPTools(t)
	// The VM forgets the topology's static address and route: DHCP sets them.
	lab.MustRun(t, d.vm, "ip", "addr", "flush", "dev", "eth0")
	lab.MustRun(t, d.vm, "ip", "link", "set", "eth0", "address", "02:00:0a:00:00:0c")
	if err := d.router.Install("one-dhcp4v2"); err != nil {
		t.Fatal(err)
	}
	d.setContext(t, dnsGuideContext+`export DNS="9.9.9.9"
export ONEAPP_VNF_DHCP4_ENABLED="YES"
export ONEAPP_VNF_DHCP4_INTERFACES="eth1"
export ONEAPP_VNF_DHCP4_LEASE_TIME="1200"
export ONEAPP_VNF_DHCP4_ETH1_MTU="1400"
`)
	for _, svc := range []string{"one-dns", "one-dhcp4v2"} {
		if out, err := d.router.RC(svc, "start"); err != nil {
			t.Fatalf("rc-service %s start: %v\n%s", svc, err, out)
		}
	}
	client, err := d.lab.DHCPClient(d.vm, "eth0", true)
	if err != nil {
		t.Fatal(err)
	}
	vm := &dhcpVM{ns: d.vm, DHCPClient: client}
	var got map[string]string
	if err := lab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
		var err error
		got, err = vm.lease()
		return err
	}); err != nil {
		log, _ := d.router.ReadFile("/var/log/one-appliance/one-dhcp4v2.log")
		t.Fatalf("no lease: %v\nlog:\n%s", err, log)
	}
	for k, w := range map[string]string{"ip": "10.0.0.12", "router": "10.0.0.1", "dns": "10.0.0.1", "mtu": "1400", "lease": "1200"} {
		if got[k] != w {
			t.Errorf("lease %s=%q, want %q (%v)", k, got[k], w, got)
		}
	}
	// The VM runs on what the lease said.
	if out := lab.MustRun(t, d.vm, "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, " inet 10.0.0.12/24 ") {
		t.Errorf("VM address: %s", out)
	}
	if out := lab.MustRun(t, d.vm, "ip", "route", "show", "default"); !strings.Contains(out, "default via 10.0.0.1 dev eth0") {
		t.Errorf("VM default route: %q", out)
	}
	if out := lab.MustRun(t, d.vm, "cat", "/sys/class/net/eth0/mtu"); strings.TrimSpace(out) != "1400" {
		t.Errorf("VM MTU: %s", out)
	}
	// The VM asks the nameserver its lease named.
	ns := got["dns"]
	dnsExpect(t, d.vm, ns, "", dnsPublicName, dnsPublicAddr)
	dnsExpect(t, d.vm, ns, "", "ep0.eth0.vr", "203.0.113.1")
	// The public side: refused on the private address, no service on the
	// public one.
	dnsExpectStatus(t, d.inet, "10.0.0.1", "", dnsPublicName, "REFUSED")
	dnsExpectSilence(t, d.inet, "203.0.113.1", dnsPublicName)
	for _, svc := range []string{"one-dhcp4v2", "one-dns"} {
		if out, err := d.router.RC(svc, "stop"); err != nil {
			t.Fatalf("rc-service %s stop: %v\n%s", svc, err, out)
		}
	}
}
