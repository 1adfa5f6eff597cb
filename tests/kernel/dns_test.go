package kernel

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// dnsTopology: the "internet" host on the router's eth0 (203.0.113.0/24)
// runs dnsmasq as the public nameserver (www.example.com is its record) and
// also owns 198.51.100.7, a client that is not on any of the router's
// networks; a VM on the private network behind eth1 (10.0.0.0/24); the router
// is an instance with its own OpenRC, in which one-dns installs itself. The
// router has no default route, so when unbound falls back to the root
// servers its packets cannot leave the lab (the sendto fails at once).
type dnsTopology struct {
	lab      *lab.Lab
	inet, vm *lab.Namespace
	router   *lab.Router
}

const (
	dnsPublicName = "www.example.com"
	dnsPublicAddr = "198.51.100.80"
	dnsFarClient  = "198.51.100.7"
)

// dnsGuideContext is the guide's example: the recursor on eth1 only, with a
// forwarder on the internet.
const dnsGuideContext = `export ETH0_IP="203.0.113.1"
export ETH0_MASK="255.255.255.0"
export ETH1_IP="10.0.0.1"
export ETH1_MASK="255.255.255.0"
export ONEAPP_VNF_DNS_ENABLED="YES"
export ONEAPP_VNF_DNS_INTERFACES="eth1"
export ONEAPP_VNF_DNS_NAMESERVERS="203.0.113.100"
`

// dnsContextNameservers: every NIC (the default), root servers off and no
// ONEAPP_VNF_DNS_NAMESERVERS: the context's nameservers are the forwarders
// (one-apps #270), the router's own address among them left out.
const dnsContextNameservers = `export ETH0_IP="203.0.113.1"
export ETH0_MASK="255.255.255.0"
export ETH0_DNS="203.0.113.100"
export ETH1_IP="10.0.0.1"
export ETH1_MASK="255.255.255.0"
export ETH1_DNS="10.0.0.1"
export ONEAPP_VNF_DNS_ENABLED="YES"
export ONEAPP_VNF_DNS_USE_ROOTSERVERS="NO"
`

func newDNSTopology(t *testing.T) *dnsTopology {
	t.Helper()
	l := needLab(t)
	for _, tool := range []string{"unbound", "unbound-checkconf", "dig", "dnsmasq", "rc-service", "supervise-daemon"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("DNS test skipped: needs %s (scripts/install-deps.sh installs it)", tool)
		}
	}
	d := &dnsTopology{lab: l}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	d.inet, err = l.Host("inet")
	must(err)
	d.vm, err = l.Host("vm")
	must(err)
	d.router, err = l.Router("router")
	must(err)
	must(l.Link(d.inet, "eth0", d.router, "eth0"))
	must(lab.Addr(d.inet, "eth0", "203.0.113.100/24"))
	must(lab.Addr(d.inet, "lo", dnsFarClient+"/32"))
	must(lab.Addr(d.router, "eth0", "203.0.113.1/24"))
	priv, err := l.Segment("private")
	must(err)
	must(priv.Attach(d.router, "eth1", "10.0.0.1/24"))
	must(priv.Attach(d.vm, "eth0", "10.0.0.12/24"))
	lab.MustRun(t, d.vm, "ip", "route", "add", "default", "via", "10.0.0.1")
	lab.MustRun(t, d.inet, "ip", "route", "add", "10.0.0.0/24", "via", "203.0.113.1")
	lab.MustRun(t, d.router, "ip", "route", "add", "198.51.100.0/24", "via", "203.0.113.100")
	_, err = l.Start(d.inet, "dnsmasq", "started", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=203.0.113.100", "--port=53",
		"--user=root", "--pid-file="+filepath.Join(l.Dir, "dnsmasq.pid"), "--log-facility=-",
		"--host-record="+dnsPublicName+","+dnsPublicAddr)
	must(err)
	must(d.router.Install("one-dns"))
	return d
}

func (d *dnsTopology) setContext(t *testing.T, env string) {
	t.Helper()
	if err := d.router.WriteFile("/run/one-context/one_env", []byte(env), 0o400); err != nil {
		t.Fatal(err)
	}
}

var digStatus = regexp.MustCompile(`status: ([A-Z]+)`)

// dnsAsk queries server for name from h (from source address src when set)
// and returns the status and the answer's addresses; an error when no
// answer came at all.
func dnsAsk(h lab.Host, server, src, name string) (status string, addrs []string, err error) {
	args := []string{"dig", "+time=2", "+tries=1", "+noall", "+comments", "+answer", "@" + server, name, "A"}
	if src != "" {
		args = append(args, "-b", src)
	}
	out, err := lab.Run(context.Background(), h, args...)
	if err != nil {
		return "", nil, err
	}
	m := digStatus.FindStringSubmatch(out)
	if m == nil {
		return "", nil, fmt.Errorf("no status in dig's output: %s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 5 && f[3] == "A" {
			addrs = append(addrs, f[4])
		}
	}
	return m[1], addrs, nil
}

// dnsExpect checks that name resolves to want through server from h.
func dnsExpect(t *testing.T, h lab.Host, server, src, name, want string) {
	t.Helper()
	var st string
	var addrs []string
	err := lab.Eventually(10*time.Second, 200*time.Millisecond, func() error {
		var err error
		st, addrs, err = dnsAsk(h, server, src, name)
		if err == nil && (st != "NOERROR" || len(addrs) != 1 || addrs[0] != want) {
			err = fmt.Errorf("status %s, addresses %v", st, addrs)
		}
		return err
	})
	if err != nil {
		t.Fatalf("%s from %s via %s: %v (want %s)", name, h.Netns(), server, err, want)
	}
}

// dnsExpectStatus checks the status of an answer (REFUSED, NXDOMAIN).
func dnsExpectStatus(t *testing.T, h lab.Host, server, src, name, want string) {
	t.Helper()
	st, addrs, err := dnsAsk(h, server, src, name)
	if err != nil || st != want || len(addrs) != 0 {
		t.Fatalf("%s from %s (source %q) via %s: status %q, addresses %v, %v; want %s", name, h.Netns(), src, server, st, addrs, err, want)
	}
}

// dnsExpectSilence checks that nothing answers at server.
func dnsExpectSilence(t *testing.T, h lab.Host, server, name string) {
	t.Helper()
	if st, addrs, err := dnsAsk(h, server, "", name); err == nil {
		t.Fatalf("%s answered %s %v from %s, want no DNS service there", server, st, addrs, h.Netns())
	}
}

// unboundChild is the unbound process supervise-daemon runs in the router.
func (d *dnsTopology) unboundChild(t *testing.T) string {
	t.Helper()
	pid, err := d.router.ReadFile("/run/openrc/options/unbound/child_pid")
	if err != nil {
		t.Fatalf("no unbound child pid: %v", err)
	}
	return strings.TrimSpace(string(pid))
}

// The guide's example, end to end through OpenRC: a VM resolves a public
// name through the forwarder and the router's local names; the public side
// is refused; unbound runs as its own user; an unchanged reload leaves
// unbound alone; a bad context changes nothing; stop stops unbound.
func TestDNSRecursor(t *testing.T) {
	d := newDNSTopology(t)
	d.setContext(t, dnsGuideContext)
	if out, err := d.router.RC("one-dns", "start"); err != nil {
		t.Fatalf("rc-service one-dns start: %v\n%s", err, out)
	}
	dnsExpect(t, d.vm, "10.0.0.1", "", dnsPublicName, dnsPublicAddr)
	dnsExpect(t, d.vm, "10.0.0.1", "", "ep0.eth0.vr", "203.0.113.1")
	dnsExpect(t, d.vm, "10.0.0.1", "", "ip0.eth1.vr", "10.0.0.1")
	dnsExpectStatus(t, d.vm, "10.0.0.1", "", "vip7.eth1.vr", "NXDOMAIN")
	// The public side: refused when it asks the private address, and no
	// service at all on the public address (eth0 is not listed).
	dnsExpectStatus(t, d.inet, "10.0.0.1", "", dnsPublicName, "REFUSED")
	dnsExpectSilence(t, d.inet, "203.0.113.1", dnsPublicName)

	if out, err := lab.Run(context.Background(), d.router, "one-dns", "status"); err != nil {
		t.Fatalf("one-dns status: %v\n%s", err, out)
	}
	pid := d.unboundChild(t)
	st, err := d.router.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)`).FindSubmatch(st); m == nil || string(m[1]) == "0" {
		t.Fatalf("unbound runs as root:\n%s", st)
	}

	// reload with an unchanged context leaves unbound running as it was.
	if out, err := d.router.RC("one-dns", "reload"); err != nil {
		t.Fatalf("rc-service one-dns reload: %v\n%s", err, out)
	}
	if again := d.unboundChild(t); again != pid {
		t.Fatalf("unchanged reload restarted unbound (%s -> %s)", pid, again)
	}
	log, _ := d.router.ReadFile("/var/log/one-appliance/one-dns.log")
	if !strings.Contains(string(log), "unbound=none") {
		t.Fatalf("log does not say unbound was left alone:\n%s", log)
	}

	// A change unbound can reload (the domain): same process, new names.
	d.setContext(t, dnsGuideContext+"export ONEAPP_VNF_DNS_CLUSTER_DOMAIN=\"lab.example\"\n")
	if out, err := d.router.RC("one-dns", "reload"); err != nil {
		t.Fatalf("rc-service one-dns reload: %v\n%s", err, out)
	}
	dnsExpect(t, d.vm, "10.0.0.1", "", "ep0.eth0.lab.example", "203.0.113.1")
	if st, addrs, _ := dnsAsk(d.vm, "10.0.0.1", "", "ep0.eth0.vr"); len(addrs) != 0 {
		t.Fatalf("the old domain still answers: %s %v", st, addrs)
	}
	if again := d.unboundChild(t); again != pid {
		t.Fatalf("a reloadable change restarted unbound (%s -> %s)", pid, again)
	}
	if ulog, err := d.router.ReadFile("/var/log/unbound/unbound.log"); err != nil || !strings.Contains(string(ulog), "Restart of unbound") {
		t.Fatalf("unbound's own log (%v):\n%s", err, ulog)
	}

	// A bad context: reload fails naming the variable, nothing changes.
	conf, _ := d.router.ReadFile("/etc/unbound/unbound.conf")
	d.setContext(t, dnsGuideContext+"export ONEAPP_VNF_DNS_NAMESERVERS=\"203.0.113.100:53\"\n")
	if out, err := d.router.RC("one-dns", "reload"); err == nil {
		t.Fatalf("reload with a bad context succeeded:\n%s", out)
	}
	if now, _ := d.router.ReadFile("/etc/unbound/unbound.conf"); string(now) != string(conf) {
		t.Fatal("a bad context changed unbound.conf")
	}
	log, _ = d.router.ReadFile("/var/log/one-appliance/one-dns.log")
	if !strings.Contains(string(log), "ONEAPP_VNF_DNS_NAMESERVERS") {
		t.Fatalf("log does not name the variable:\n%s", log)
	}
	dnsExpect(t, d.vm, "10.0.0.1", "", dnsPublicName, dnsPublicAddr)
	d.setContext(t, dnsGuideContext)

	// unbound killed: its supervisor starts it again.
	pid = d.unboundChild(t)
	lab.MustRun(t, d.router, "kill", "-KILL", pid)
	dnsExpect(t, d.vm, "10.0.0.1", "", dnsPublicName, dnsPublicAddr)
	if again := d.unboundChild(t); again == pid {
		t.Fatalf("unbound %s was not respawned", pid)
	}
	// unbound stopped behind one-dns's back: one-dns says it crashed, and
	// a restart brings DNS back.
	if out, err := d.router.RC("unbound", "stop"); err != nil {
		t.Fatalf("rc-service unbound stop: %v\n%s", err, out)
	}
	if out, err := d.router.RC("one-dns", "status"); err == nil || !strings.Contains(out+err.Error(), "crashed") {
		t.Fatalf("one-dns status with unbound stopped: %v\n%s", err, out)
	}
	if out, err := d.router.RC("one-dns", "restart"); err != nil {
		t.Fatalf("rc-service one-dns restart: %v\n%s", err, out)
	}
	dnsExpect(t, d.vm, "10.0.0.1", "", dnsPublicName, dnsPublicAddr)

	// stop stops unbound: nothing answers any more.
	if out, err := d.router.RC("one-dns", "stop"); err != nil {
		t.Fatalf("rc-service one-dns stop: %v\n%s", err, out)
	}
	if out, _ := d.router.RC("unbound", "status"); !strings.Contains(out, "stopped") {
		t.Fatalf("unbound after one-dns stop: %s", out)
	}
	dnsExpectSilence(t, d.vm, "10.0.0.1", dnsPublicName)
}

// Every NIC listens (the default) and the context's nameservers are the
// forwarders: the VM resolves through them, a client on the public subnet
// is served (the default allows the listened NICs' subnets), a client from
// anywhere else is refused, so the router is no open resolver.
func TestDNSContextNameservers(t *testing.T) {
	d := newDNSTopology(t)
	d.setContext(t, dnsContextNameservers)
	if out, err := d.router.RC("one-dns", "start"); err != nil {
		t.Fatalf("rc-service one-dns start: %v\n%s", err, out)
	}
	dnsExpect(t, d.vm, "10.0.0.1", "", dnsPublicName, dnsPublicAddr)
	dnsExpect(t, d.vm, "10.0.0.1", "", "ep0.eth1.vr", "10.0.0.1")
	conf, err := d.router.ReadFile("/etc/unbound/unbound.conf")
	if err != nil || !strings.Contains(string(conf), "forward-addr: 203.0.113.100\n") || strings.Contains(string(conf), "forward-addr: 10.0.0.1") {
		t.Fatalf("forwarders in unbound.conf (%v):\n%s", err, conf)
	}
	dnsExpect(t, d.inet, "203.0.113.1", "", "ep0.eth0.vr", "203.0.113.1")
	dnsExpectStatus(t, d.inet, "203.0.113.1", dnsFarClient, dnsPublicName, "REFUSED")
	dnsExpectStatus(t, d.inet, "10.0.0.1", dnsFarClient, dnsPublicName, "REFUSED")

	// Back to eth1 only: the listening addresses change, unbound restarts
	// and no longer listens on the public address.
	d.setContext(t, dnsGuideContext)
	if out, err := d.router.RC("one-dns", "reload"); err != nil {
		t.Fatalf("rc-service one-dns reload: %v\n%s", err, out)
	}
	dnsExpectSilence(t, d.inet, "203.0.113.1", dnsPublicName)
	dnsExpect(t, d.vm, "10.0.0.1", "", dnsPublicName, dnsPublicAddr)
	if out, err := d.router.RC("one-dns", "stop"); err != nil {
		t.Fatalf("rc-service one-dns stop: %v\n%s", err, out)
	}
}

// A backup router listens on the VIP before it holds it (ip-freebind): once
// keepalived moves the VIP in, the same unbound answers on it, with no
// reload.
func TestDNSFloatingVIP(t *testing.T) {
	d := newDNSTopology(t)
	lab.MustRun(t, d.router, "ip", "addr", "del", "10.0.0.1/24", "dev", "eth1")
	lab.MustRun(t, d.router, "ip", "addr", "add", "10.0.0.2/24", "dev", "eth1")
	d.setContext(t, strings.Replace(dnsGuideContext, `export ETH1_IP="10.0.0.1"`,
		"export ETH1_IP=\"10.0.0.2\"\nexport ONEAPP_VROUTER_ETH1_VIP0=\"10.0.0.1\"", 1))
	if out, err := d.router.RC("one-dns", "start"); err != nil {
		t.Fatalf("rc-service one-dns start without the VIP: %v\n%s", err, out)
	}
	pid := d.unboundChild(t)
	dnsExpect(t, d.vm, "10.0.0.2", "", "ep0.eth1.vr", "10.0.0.1")
	dnsExpectSilence(t, d.vm, "10.0.0.1", "ep0.eth1.vr")
	lab.MustRun(t, d.router, "ip", "addr", "add", "10.0.0.1/24", "dev", "eth1")
	dnsExpect(t, d.vm, "10.0.0.1", "", dnsPublicName, dnsPublicAddr)
	if again := d.unboundChild(t); again != pid {
		t.Fatalf("unbound restarted (%s -> %s)", pid, again)
	}
}
