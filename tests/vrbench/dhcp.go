package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/hypercx/vrouter/pkg/dhcp4/onelease"
	"github.com/hypercx/vrouter/tests/lab"
)

// The DHCP bench's link: the server's eth1 (10.0.0.1/16) and the client
// namespace's eth0, where perfdhcp acts as a relay agent from 10.0.0.50 (in
// relay mode it gets every reply; machine-notes) and the readiness probe
// from 10.0.0.51. Every server hands out the same range with the same
// options and a one-hour lease, and keeps its leases on disk in the lab's
// directory.
const (
	dhcpServerAddr = "10.0.0.1"
	dhcpRelayAddr  = "10.0.0.50"
	dhcpProbeAddr  = "10.0.0.51"
	dhcpRangeStart = "10.0.1.1"
	dhcpRangeEnd   = "10.0.254.254"
	// dhcpClients is perfdhcp's -R: 10,000 simulated clients, so a run
	// mixes new clients and clients coming back for their lease.
	dhcpClients = 10000
	// dhcpPeriod is how long each offered rate is held.
	dhcpPeriod = 5 * time.Second
)

// dhcpRates are the offered rates (4-way exchanges per second) each server
// is taken through, from idle to well past what this machine can carry.
var dhcpRates = []int{250, 500, 1000, 2000, 4000, 6000, 8000, 12000}

// one-dhcp4v2's context: eth1's server with the range of the others, MAC2IP
// off (every perfdhcp client is dynamic, as with the range plugin and
// dnsmasq) or on (the default; perfdhcp's MACs then carry the 02:00 prefix).
func dhcpContext(mac2ip bool) string {
	return fmt.Sprintf(`export ETH1_IP="%s"
export ETH1_MASK="255.255.0.0"
export ONEAPP_VNF_DHCP4_ENABLED="YES"
export ONEAPP_VNF_DHCP4_INTERFACES="eth1"
export ONEAPP_VNF_DHCP4_DNS="%s"
export ONEAPP_VNF_DHCP4_MAC2IP_ENABLED="%s"
export ONEAPP_VNF_DHCP4_ETH1="10.0.0.0/16:%s-%s"
`, dhcpServerAddr, dhcpServerAddr, map[bool]string{true: "YES", false: "NO"}[mac2ip], dhcpRangeStart, dhcpRangeEnd)
}

// dhcpServer is one server under test: start brings up a fresh instance
// whose state lives in dir.
type dhcpServer struct {
	name string
	// perfArgs are extra perfdhcp arguments (the MAC base).
	perfArgs []string
	start    func(dir string) (*lab.Proc, error)
	// note says how the server was configured.
	note string
}

// dhcpLevel is what perfdhcp measured at one offered rate.
type dhcpLevel struct {
	offered              int
	sent, acked, drops   int
	achieved             float64 // acknowledged 4-way exchanges per second of the test period
	doDelayMs, raDelayMs string
	// sockDrops are the datagrams the kernel dropped because the server's
	// socket was full: the server's share of the drops; clientDrops those
	// perfdhcp's socket dropped (sampled while it runs: a lower bound).
	sockDrops, clientDrops int
}

func (lv dhcpLevel) clean() bool {
	return lv.drops == 0 && lv.sent > 0 && lv.achieved >= 0.95*float64(lv.offered)
}

// benchDHCP measures, in one run on this machine, the DHCP throughput of
// one-dhcp4v2 against stock coredhcp with its range plugin and dnsmasq,
// with perfdhcp (Debian kea-admin) as a relay agent in another namespace:
// each server is taken through rising offered rates, fresh each time, and
// its highest rate with no drops and its peak are reported. Then
// one-dhcp4v2 is started over 10,000 stored leases and timed until it
// answers.
func benchDHCP(b *bench) error {
	for _, tool := range []string{"perfdhcp", "dnsmasq"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("needs %s (scripts/install-deps.sh installs it): %w", tool, err)
		}
	}
	l := b.lab
	srv, err := l.Host("dhcpsrv")
	if err != nil {
		return err
	}
	cli, err := l.Host("dhcpcli")
	if err != nil {
		return err
	}
	if err := l.Link(srv, "eth1", cli, "eth0"); err != nil {
		return err
	}
	if err := lab.Addr(srv, "eth1", dhcpServerAddr+"/16"); err != nil {
		return err
	}
	if err := lab.Addr(cli, "eth0", dhcpRelayAddr+"/16", dhcpProbeAddr+"/16"); err != nil {
		return err
	}
	dir := filepath.Join(l.Dir, "dhcp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	probe, err := newRelayProbe(cli, dhcpProbeAddr, dhcpServerAddr)
	if err != nil {
		return err
	}
	defer probe.Close()

	fmt.Println("  building stock coredhcp (the version in go.mod) ...")
	coredhcp, cdErr := buildCoredhcp(dir)
	servers := []dhcpServer{
		oneDHCPServer(l, srv, false),
		{name: "coredhcp + range plugin", start: func(d string) (*lab.Proc, error) {
			if cdErr != nil {
				return nil, cdErr
			}
			return startCoredhcp(l, srv, coredhcp, d)
		}, note: "stock coredhcp's command, range plugin (sqlite lease file), log level warning"},
		{name: "dnsmasq", start: func(d string) (*lab.Proc, error) { return startDnsmasq(l, srv, d) },
			note: "lease file on disk, --dhcp-lease-max 100000, --no-ping and --quiet-dhcp (its fastest settings)"},
		oneDHCPServer(l, srv, true),
	}
	results := map[string][]dhcpLevel{}
	errs := map[string]error{}
	for i, s := range servers {
		fmt.Printf("  %s: %s\n", s.name, s.note)
		lvs, err := dhcpLadder(s, srv, cli, probe, filepath.Join(dir, fmt.Sprintf("server%d", i)))
		results[s.name], errs[s.name] = lvs, err
		if err != nil {
			fmt.Printf("    %s: %v\n", s.name, err)
		}
	}
	best := func(name string) (clean, peak dhcpLevel) {
		for _, lv := range results[name] {
			if lv.clean() && lv.offered > clean.offered {
				clean = lv
			}
			if lv.achieved > peak.achieved {
				peak = lv
			}
		}
		return clean, peak
	}
	ours := servers[0].name
	// The others' best: the highest drop-free rate and the highest peak,
	// whichever server each comes from.
	var fastest, peakiest string
	var fastestClean, fastestPeak dhcpLevel
	for _, s := range servers[1:3] {
		c, p := best(s.name)
		if c.offered > fastestClean.offered {
			fastest, fastestClean = s.name, c
		}
		if p.achieved > fastestPeak.achieved {
			peakiest, fastestPeak = s.name, p
		}
	}
	for _, s := range servers {
		c, p := best(s.name)
		target, ok := "-", true
		switch s.name {
		case ours:
			target = fmt.Sprintf(">= 1000/s and >= the others' best (%s, %d/s)", orNone(fastest), fastestClean.offered)
			ok = c.offered >= 1000 && c.offered >= fastestClean.offered && errs[ours] == nil && errs[servers[1].name] == nil && errs[servers[2].name] == nil
		}
		value := "none"
		if c.offered > 0 {
			value = fmt.Sprintf("%d/s offered, %.0f/s done, 0 drops", c.offered, c.achieved)
		}
		if errs[s.name] != nil {
			value += " (" + errs[s.name].Error() + ")"
		}
		b.add(fmt.Sprintf("DHCP %s: highest rate without drops", s.name), target, value, ok)
		target, ok = "-", true
		if s.name == ours {
			target = fmt.Sprintf(">= the others' best peak (%s, %.0f/s)", orNone(peakiest), fastestPeak.achieved)
			ok = p.achieved >= fastestPeak.achieved
		}
		b.add(fmt.Sprintf("  %s: peak 4-way exchanges/s (offered %d/s, %d drops)", s.name, p.offered, p.drops), target,
			fmt.Sprintf("%.0f/s", p.achieved), ok)
	}
	if err := benchDHCPRestart(b, srv, probe, dir); err != nil {
		return err
	}
	return benchDHCPOnLink(b, srv, cli, probe, dir)
}

// benchDHCPOnLink times a whole lease of a client on the server's link
// (busybox udhcpc: DISCOVER to ACK), for an address new to the server,
// which is ARP-probed before it is offered, and for a MAC2IP address,
// which is not. The difference is what conflict detection costs a new
// client; the server starts fresh for each run.
func benchDHCPOnLink(b *bench, srv, cli *lab.Namespace, probe *relayProbe, dir string) error {
	if _, err := exec.LookPath("busybox"); err != nil {
		fmt.Println("  on-link lease figures skipped: needs busybox (scripts/install-deps.sh installs it)")
		return nil
	}
	orig, err := lab.Run(context.Background(), cli, "cat", "/sys/class/net/eth0/address")
	if err != nil {
		return err
	}
	defer func() {
		_, _ = lab.Run(context.Background(), cli, "ip", "link", "set", "eth0", "address", strings.TrimSpace(orig))
	}()
	for _, c := range []struct {
		mac2ip bool
		mac    string
		what   string
	}{
		{false, "52:54:00:aa:00:01", "address new to the server (ARP-probed first, up to 150 ms)"},
		{true, "02:00:0a:00:01:05", "MAC2IP address (not probed)"},
	} {
		if _, err := lab.Run(context.Background(), cli, "ip", "link", "set", "eth0", "address", c.mac); err != nil {
			return err
		}
		var ds []time.Duration
		for run := 0; run < b.runs; run++ {
			d := filepath.Join(dir, fmt.Sprintf("onlink-%t-%d", c.mac2ip, run))
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			env := filepath.Join(d, "one_env")
			if err := os.WriteFile(env, []byte(dhcpContext(c.mac2ip)), 0o600); err != nil {
				return err
			}
			p, err := b.lab.Start(srv, "one-dhcp4v2 on-link", "", lab.Bin("one-dhcp4v2"), "--root", filepath.Join(d, "root"), "--env-file", env,
				"--log-file", "/var/log/one-appliance/one-dhcp4v2.log", "start")
			if err != nil {
				return err
			}
			// Serving (a relayed DISCOVER is answered, without a probe).
			if _, err := probe.waitOffer(net.HardwareAddr{0x02, 0x00, 0x0a, 0x00, 0x02, 0x01}, 10*time.Second); err != nil {
				p.Stop()
				return fmt.Errorf("one-dhcp4v2 did not answer: %v: %s", err, tail(p.Output()))
			}
			start := time.Now()
			out, err := lab.Run(context.Background(), cli, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "3", "-T", "1", "-s", "/bin/true")
			took := time.Since(start)
			p.Stop()
			if err != nil {
				return fmt.Errorf("udhcpc got no lease (%s): %v: %s", c.what, err, out)
			}
			ds = append(ds, took)
		}
		med, lo, hi := stats(ds)
		b.add("on-link client, whole lease (udhcpc), "+c.what, "-", spread(med, lo, hi), true)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none measured"
	}
	return s
}

// dhcpLadder takes s through dhcpRates, a fresh instance for each, until it
// saturates: a rate with drops whose throughput is no better than the
// previous one's.
func dhcpLadder(s dhcpServer, srv, cli *lab.Namespace, probe *relayProbe, dir string) ([]dhcpLevel, error) {
	var out []dhcpLevel
	for _, rate := range dhcpRates {
		// A rate with drops is run once more, for every server alike: on a
		// shared machine a burst of other work can starve the load
		// generator (its drops then show none in the server's socket). The
		// better run counts.
		var lv dhcpLevel
		for try := 0; try < 2; try++ {
			d := filepath.Join(dir, fmt.Sprintf("%d-%d", rate, try))
			x, err := dhcpRun(s, srv, cli, probe, d, rate)
			if err != nil {
				return out, err
			}
			fmt.Printf("    offered %5d/s: done %7.1f/s, %6d sent, %6d acknowledged, %5d drops (%d in the server's socket, >= %d in perfdhcp's), delay DO %s RA %s\n",
				rate, x.achieved, x.sent, x.acked, x.drops, x.sockDrops, x.clientDrops, x.doDelayMs, x.raDelayMs)
			if try == 0 || x.clean() || (!lv.clean() && x.achieved > lv.achieved) {
				lv = x
			}
			if lv.clean() {
				break
			}
		}
		out = append(out, lv)
		if n := len(out); !lv.clean() && n > 1 && lv.achieved <= 1.05*out[n-2].achieved {
			break
		}
	}
	return out, nil
}

// dhcpRun starts a fresh instance of s, waits until it answers and loads
// it with perfdhcp at rate.
func dhcpRun(s dhcpServer, srv, cli *lab.Namespace, probe *relayProbe, dir string, rate int) (dhcpLevel, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return dhcpLevel{}, err
	}
	p, err := s.start(dir)
	if err != nil {
		return dhcpLevel{}, err
	}
	defer p.Stop()
	// A relayed DISCOVER answered: the server is up. The probe's MAC
	// carries the MAC2IP prefix (a miss: 11.0.0.x is not on this
	// network), so every server and mode answers it.
	if _, err := probe.waitOffer(net.HardwareAddr{0x02, 0x00, 0x0b, 0x00, byte(rate >> 8), byte(rate)}, 10*time.Second); err != nil {
		return dhcpLevel{}, fmt.Errorf("not answering: %v: %s", err, tail(p.Output()))
	}
	// perfdhcp's socket lives as long as it runs: sample its drops.
	done := make(chan struct{})
	sampled := make(chan int, 1)
	go func() {
		most := 0
		for {
			if n := udpDrops(cli, dhcpv4.ServerPort); n > most {
				most = n
			}
			select {
			case <-done:
				sampled <- most
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	lv, err := perfdhcp(cli, rate, s.perfArgs)
	close(done)
	lv.clientDrops = <-sampled
	lv.sockDrops = udpDrops(srv, dhcpv4.ServerPort)
	return lv, err
}

// udpDrops sums the receive drops of h's UDP sockets bound to port (the
// last column of /proc/net/udp).
func udpDrops(h lab.Host, port int) int {
	out, err := lab.Run(context.Background(), h, "cat", "/proc/net/udp")
	if err != nil {
		return -1
	}
	suffix := fmt.Sprintf(":%04X", port)
	n := 0
	for _, l := range strings.Split(out, "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 13 || !strings.HasSuffix(f[1], suffix) {
			continue
		}
		d, _ := strconv.Atoi(f[len(f)-1])
		n += d
	}
	return n
}

func tail(s string) string {
	if len(s) > 600 {
		return "…" + s[len(s)-600:]
	}
	return s
}

var (
	perfSection = regexp.MustCompile(`\*\*\*Statistics for: (DISCOVER-OFFER|REQUEST-ACK)\*\*\*`)
	perfField   = regexp.MustCompile(`(?m)^(sent packets|received packets|drops|avg delay): ([0-9.]+|n/a)`)
)

// perfdhcp offers rate 4-way exchanges per second for dhcpPeriod from the
// relay address and reads its statistics; late answers are waited for 1 s
// (-W) so that none in flight at the end counts as dropped.
func perfdhcp(cli *lab.Namespace, rate int, extra []string) (dhcpLevel, error) {
	args := append([]string{"perfdhcp", "-4", "-l", dhcpRelayAddr, "-r", strconv.Itoa(rate), "-p", strconv.Itoa(int(dhcpPeriod / time.Second)),
		"-R", strconv.Itoa(dhcpClients), "-W", "1000000"}, extra...)
	args = append(args, dhcpServerAddr)
	ctx, cancel := context.WithTimeout(context.Background(), dhcpPeriod+30*time.Second)
	defer cancel()
	out, err := lab.Run(ctx, cli, args...)
	// perfdhcp exits 3 when packets were dropped: its statistics say how many.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) && !strings.Contains(err.Error(), "exit status 3") {
		return dhcpLevel{}, fmt.Errorf("perfdhcp: %v", err)
	}
	lv := dhcpLevel{offered: rate}
	idx := perfSection.FindAllStringSubmatchIndex(out, -1)
	if len(idx) != 2 {
		return lv, fmt.Errorf("perfdhcp printed no statistics:\n%s", out)
	}
	for i, m := range idx {
		end := len(out)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		for _, f := range perfField.FindAllStringSubmatch(out[m[1]:end], -1) {
			n, _ := strconv.Atoi(f[2])
			switch f[1] {
			case "sent packets":
				if i == 0 {
					lv.sent = n
				}
			case "received packets":
				if i == 1 {
					lv.acked = n
				}
			case "drops":
				lv.drops += n
			case "avg delay":
				if i == 0 {
					lv.doDelayMs = f[2] + " ms"
				} else {
					lv.raDelayMs = f[2] + " ms"
				}
			}
		}
	}
	lv.achieved = float64(lv.acked) / dhcpPeriod.Seconds()
	return lv, nil
}

// oneDHCPServer is one-dhcp4v2 as OpenRC runs it (configure is part of
// start; logs to a file), with its state under a root of its own.
func oneDHCPServer(l *lab.Lab, srv *lab.Namespace, mac2ip bool) dhcpServer {
	s := dhcpServer{name: "one-dhcp4v2", note: "onelease plugin, MAC2IP off (dynamic pool), logs at info level to a file"}
	if mac2ip {
		s.name = "one-dhcp4v2 (MAC2IP clients)"
		s.note = "MAC2IP on (the default), perfdhcp's MACs counted up from 02:00:0a:00:01:01 (each gets the address in its MAC: 10.0.1.1, ...)"
		s.perfArgs = []string{"-b", "mac=02:00:0a:00:01:01"}
	}
	s.start = func(dir string) (*lab.Proc, error) {
		env := filepath.Join(dir, "one_env")
		if err := os.WriteFile(env, []byte(dhcpContext(mac2ip)), 0o600); err != nil {
			return nil, err
		}
		return l.Start(srv, s.name, "", lab.Bin("one-dhcp4v2"), "--root", filepath.Join(dir, "root"), "--env-file", env,
			"--log-file", "/var/log/one-appliance/one-dhcp4v2.log", "start")
	}
	return s
}

// buildCoredhcp builds coredhcp's own command at the version go.mod pins,
// in a throwaway module under dir (it needs cgo for its sqlite lease store).
func buildCoredhcp(dir string) (string, error) {
	ver, err := exec.Command("go", "list", "-C", lab.RepoRoot(), "-m", "-f", "{{.Version}}", "github.com/coredhcp/coredhcp").Output()
	if err != nil {
		return "", fmt.Errorf("reading coredhcp's version from go.mod: %w", err)
	}
	mod := filepath.Join(dir, "coredhcp-build")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "coredhcp")
	for _, args := range [][]string{
		{"mod", "init", "coredhcpbench"},
		{"get", "github.com/coredhcp/coredhcp/cmds/coredhcp@" + strings.TrimSpace(string(ver))},
		{"build", "-o", bin, "github.com/coredhcp/coredhcp/cmds/coredhcp"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building coredhcp (go %s): %v: %s", strings.Join(args, " "), err, tail(string(out)))
		}
	}
	return bin, nil
}

func startCoredhcp(l *lab.Lab, srv *lab.Namespace, bin, dir string) (*lab.Proc, error) {
	conf := fmt.Sprintf(`server4:
  listen:
    - "%%eth1"
  plugins:
    - server_id: %s
    - netmask: 255.255.0.0
    - router: %s
    - dns: %s
    - range: %s %s %s 3600s
`, dhcpServerAddr, dhcpServerAddr, dhcpServerAddr, filepath.Join(dir, "leases.sqlite3"), dhcpRangeStart, dhcpRangeEnd)
	path := filepath.Join(dir, "coredhcp.yml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return l.Start(srv, "coredhcp", "", bin, "-c", path, "-L", "warning")
}

func startDnsmasq(l *lab.Lab, srv *lab.Namespace, dir string) (*lab.Proc, error) {
	return l.Start(srv, "dnsmasq", "", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--port=0", "--interface=eth1", "--bind-interfaces", "--user=root", "--pid-file="+filepath.Join(dir, "dnsmasq.pid"),
		"--log-facility="+filepath.Join(dir, "dnsmasq.log"), "--quiet-dhcp", "--no-ping", "--dhcp-authoritative",
		"--dhcp-range="+dhcpRangeStart+","+dhcpRangeEnd+",255.255.0.0,1h", "--dhcp-lease-max=100000",
		"--dhcp-leasefile="+filepath.Join(dir, "dnsmasq.leases"),
		"--dhcp-option=3,"+dhcpServerAddr, "--dhcp-option=6,"+dhcpServerAddr)
}

// benchDHCPRestart times one-dhcp4v2 from its start (the whole process:
// context, configure, loading and compacting 10,000 stored leases, binding)
// to its first answer, which must be a stored lease's address.
func benchDHCPRestart(b *bench, srv *lab.Namespace, probe *relayProbe, dir string) error {
	const n = 10000
	d := filepath.Join(dir, "restart")
	root := filepath.Join(d, "root")
	file := filepath.Join(root, "var/lib/one-appliance/dhcp4/leases-eth1.log")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	env := filepath.Join(d, "one_env")
	if err := os.WriteFile(env, []byte(dhcpContext(false)), 0o600); err != nil {
		return err
	}
	var leases strings.Builder
	leases.WriteString("# one-dhcp4v2 leases v1\n")
	expiry := time.Now().Add(time.Hour)
	mac := func(i int) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0x00, 0x00, byte(i >> 8), byte(i)} }
	ip := func(i int) string { return fmt.Sprintf("10.0.%d.%d", 1+i/250, 1+i%250) }
	for i := 0; i < n; i++ {
		leases.WriteString(onelease.RecordLine(mac(i).String(), ip(i), expiry))
	}
	var ds []time.Duration
	for run := 0; run < b.runs; run++ {
		if err := os.WriteFile(file, []byte(leases.String()), 0o640); err != nil {
			return err
		}
		who := (run*1237 + 17) % n
		start := time.Now()
		p, err := b.lab.Start(srv, "one-dhcp4v2 restart", "", lab.Bin("one-dhcp4v2"), "--root", root, "--env-file", env,
			"--log-file", "/var/log/one-appliance/one-dhcp4v2.log", "start")
		if err != nil {
			return err
		}
		got, err := probe.waitOffer(mac(who), 10*time.Second)
		took := time.Since(start)
		out := p.Output()
		p.Stop()
		if err != nil {
			return fmt.Errorf("one-dhcp4v2 with %d stored leases did not answer: %v: %s", n, err, tail(out))
		}
		if got.String() != ip(who) {
			return fmt.Errorf("stored lease %s=%s answered with %s", mac(who), ip(who), got)
		}
		if !strings.Contains(out, fmt.Sprintf("active=%d ", n)) {
			return fmt.Errorf("the leases were not all loaded: %s", tail(out))
		}
		ds = append(ds, took)
	}
	med, lo, hi := stats(ds)
	b.add(fmt.Sprintf("one-dhcp4v2 start with %d stored leases -> a stored client's OFFER", n), "<= "+ms(500*time.Millisecond),
		spread(med, lo, hi), med <= 500*time.Millisecond)
	return nil
}

// relayProbe is a DHCP relay agent's socket inside the client namespace: it
// sends DISCOVERs to the server as a relay would (giaddr set) and reads the
// OFFERs, which come back to port 67 of the relay address.
type relayProbe struct {
	conn   *net.UDPConn
	server *net.UDPAddr
	giaddr net.IP
}

func newRelayProbe(h lab.Host, local, server string) (*relayProbe, error) {
	var conn *net.UDPConn
	err := lab.InNetns(h, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(local), Port: dhcpv4.ServerPort})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening the relay probe in %s: %w", h.Netns(), err)
	}
	return &relayProbe{conn: conn, server: &net.UDPAddr{IP: net.ParseIP(server), Port: dhcpv4.ServerPort}, giaddr: net.ParseIP(local)}, nil
}

func (p *relayProbe) Close() error { return p.conn.Close() }

// waitOffer sends a DISCOVER for hw every 2 ms until an OFFER for it comes
// back, and returns the offered address.
func (p *relayProbe) waitOffer(hw net.HardwareAddr, timeout time.Duration) (net.IP, error) {
	d, err := dhcpv4.NewDiscovery(hw, dhcpv4.WithGatewayIP(p.giaddr))
	if err != nil {
		return nil, err
	}
	pkt := d.ToBytes()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	// Answers to an earlier call's repeated DISCOVERs are still queued:
	// drop them, so that they never fill the socket.
	_ = p.conn.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
	for {
		if _, _, err := p.conn.ReadFromUDP(buf); err != nil {
			break
		}
	}
	for time.Now().Before(deadline) {
		if _, err := p.conn.WriteToUDP(pkt, p.server); err != nil {
			return nil, err
		}
		_ = p.conn.SetReadDeadline(time.Now().Add(2 * time.Millisecond))
		for {
			n, _, err := p.conn.ReadFromUDP(buf)
			if err != nil {
				break
			}
			r, err := dhcpv4.FromBytes(buf[:n])
			if err == nil && r.TransactionID == d.TransactionID && r.MessageType() == dhcpv4.MessageTypeOffer {
				return r.YourIPAddr, nil
			}
		}
	}
	return nil, fmt.Errorf("no OFFER within %s", timeout)
}
