package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/tests/lab"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// The OneGate faults: the fault lab's OneGate is the simulator on the
// internet host, describing the lab's networks (scripts/lab/onegate) with a
// second VM, web (VM 20, 10.0.0.14), which has the EXTERNAL alias
// 203.0.113.20 (one-sdnat4 maps it) and publishes itself as a dynamic
// backend of HAProxy's LB0 on the public VIP (whose static backend is the
// lab's VM). Both daemons look at OneGate every second.
const (
	gateToken = "faults-onegate-token"
	webAddr   = "10.0.0.14"
	webPublic = "203.0.113.20"
	// serversCfg is where one-haproxy writes its LBs.
	serversCfg = "/etc/haproxy/servers.cfg"
)

const gateShared = `export ONEAPP_VNF_SDNAT4_ENABLED="YES"
export ONEAPP_VNF_SDNAT4_INTERFACES="eth0 eth1"
export ONEAPP_VNF_SDNAT4_REFRESH_RATE="1"
export ONEAPP_VNF_HAPROXY_ENABLED="YES"
export ONEAPP_VNF_HAPROXY_ONEGATE_ENABLED="YES"
export ONEAPP_VNF_HAPROXY_REFRESH_RATE="1"
export ONEAPP_VNF_HAPROXY_LB0_IP="<ETH0_VIP0>"
export ONEAPP_VNF_HAPROXY_LB0_PORT="80"
export ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST="10.0.0.12"
export ONEAPP_VNF_HAPROXY_LB0_SERVER0_PORT="80"
export ONEAPP_VNF_WG_ENABLED="YES"
export ONEAPP_VNF_WG_INTERFACE_OUT="eth0"
export ONEAPP_VNF_WG_INTERFACE_IN="eth1"
export ONEAPP_VNF_WG_PEERS="1"
`

// webVM is VM 20's OneGate document: web on the private network, with,
// when published, the EXTERNAL alias (SDNAT4) and the attributes that make
// it a server of HAProxy's LB0 (its context has BACKEND=YES).
func webVM(published bool) []byte {
	alias, attrs := "", ""
	if published {
		alias = `,
      "NIC_ALIAS": [{"NIC_ID": "1", "NAME": "NIC0_ALIAS1", "PARENT": "NIC0", "PARENT_ID": "0", "EXTERNAL": "YES",
        "NETWORK": "public", "NETWORK_ID": "0", "IP": "` + webPublic + `", "MAC": "02:00:cb:00:71:14"}]`
		attrs = `"ONEGATE_HAPROXY_LB0_IP": "` + lab.PublicVIP + `", "ONEGATE_HAPROXY_LB0_PORT": "80",
      "ONEGATE_HAPROXY_LB0_SERVER_HOST": "` + webAddr + `", "ONEGATE_HAPROXY_LB0_SERVER_PORT": "80"`
	}
	return []byte(`{"VM": {"ID": "20", "NAME": "web", "STATE": "3", "LCM_STATE": "3", "USER_TEMPLATE": {` + attrs + `},
  "TEMPLATE": {"CONTEXT": {"NETWORK": "YES", "BACKEND": "YES", "TOKEN": "YES"},
    "NIC": [{"NIC_ID": "0", "NAME": "NIC0", "NETWORK": "private", "NETWORK_ID": "1", "IP": "` + webAddr + `", "MAC": "02:00:0a:00:00:0e"}]` + alias + `}}}`)
}

// setupGate starts OneGate and web before the routers boot, and gives each
// router its OneGate context (its own VM ID: 10, 11).
func setupGate(t *testing.T, a *appliance) func(i int) string {
	t.Helper()
	var err error
	if a.gate, err = sim.Start(a.Lab, a.Inet, lab.InetAddr+":5030", gateToken, ""); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"vnet-0", "vnet-1"} {
		doc, err := os.ReadFile(filepath.Join(lab.RepoRoot(), "scripts", "lab", "onegate", name+".json"))
		if err == nil {
			err = a.gate.WriteDocument(name, doc)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := a.gate.WriteDocument("vm-20", webVM(true)); err != nil {
		t.Fatal(err)
	}
	web, err := a.Lab.Host("web")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Private.Attach(web, "eth0", webAddr+"/24"); err != nil {
		t.Fatal(err)
	}
	lab.MustRun(t, web, "ip", "route", "add", "default", "via", lab.PrivateVIP)
	if _, err := a.Lab.Start(web, "nettool", "ready", lab.Bin("nettool"), "serve", "--tcp", ":80", "--name", "web"); err != nil {
		t.Fatal(err)
	}
	return func(i int) string {
		return fmt.Sprintf("export ONEGATE_ENDPOINT=%q\nexport TOKENTXT=%q\nexport VMID=\"%d\"\n", a.gate.URL, gateToken, 10+i)
	}
}

// mapsWeb tells how much of web's mapping r holds: "address rule", either
// or none ("") of its lo address and its DNAT rule (SDNAT4 adds the rule
// first and removes it last).
func mapsWeb(r *lab.Router) string {
	var has []string
	if out, _ := lab.Run(context.Background(), r, "ip", "-4", "-o", "addr", "show", "dev", "lo", "label", "SDNAT4"); strings.Contains(out, " "+webPublic+"/32 ") {
		has = append(has, "address")
	}
	if rules, _ := lab.Run(context.Background(), r, "iptables", "-t", "nat", "-S", "DNAT4"); strings.Contains(rules, "-d "+webPublic+"/32 ") {
		has = append(has, "rule")
	}
	return strings.Join(has, " ")
}

// balancesWeb reports whether r's HAProxy has web among LB0's servers.
func balancesWeb(r *lab.Router) bool {
	b, _ := r.ReadFile(serversCfg)
	return strings.Contains(string(b), " "+webAddr+":80 ")
}

// webServed waits until the master m maps web's public address and
// balances to web (published) or neither (withdrawn), and, published,
// checks both with traffic from the internet.
func webServed(t *testing.T, a *appliance, m *lab.Router, published bool) {
	t.Helper()
	if err := lab.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		want := ""
		if published {
			want = "address rule"
		}
		if got := mapsWeb(m); got != want || balancesWeb(m) != published {
			return fmt.Errorf("%s: %s mapped %q, web in %s %t; want %t", m.Role, webPublic, got, serversCfg, balancesWeb(m), published)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, daemonLogs(m))
	}
	if published {
		probeOK(t, a.Inet, "tcp", webPublic+":80", "web")
		lbReaches(t, a, "web")
	}
}

// lbReaches waits until a connection to HAProxy's LB0 on the public VIP
// is answered by the backend called name.
func lbReaches(t *testing.T, a *appliance, name string) {
	t.Helper()
	var last string
	if err := lab.Eventually(20*time.Second, 0, func() error {
		out, err := lab.Run(context.Background(), a.Inet, lab.Bin("nettool"), "probe", "tcp", lab.PublicVIP+":80", "--timeout", "1s")
		last = strings.TrimSpace(out)
		if err == nil && !strings.Contains(out, "name="+name) {
			err = fmt.Errorf("answered by %q", last)
		}
		return err
	}); err != nil {
		t.Fatalf("HAProxy's LB0 does not reach %s: %v", name, err)
	}
}

func daemonLogs(r *lab.Router) string {
	var b strings.Builder
	for _, svc := range []string{"one-sdnat4", "one-haproxy"} {
		b.WriteString(r.TailFile("/var/log/one-appliance/"+svc+".log", 15))
	}
	return b.String()
}

// settled waits until the fault before (or the boot) is over: neither router's
// one-failover has acted for two seconds (the reconcile of an earlier
// contextualization is done), the backup runs none of the OneGate clients,
// and the master's processes have not changed for a second (an old haproxy
// worker is gone).
func settled(t *testing.T, m, b *lab.Router) {
	t.Helper()
	starts, since := m.Starts(), time.Now()
	if err := lab.Eventually(60*time.Second, 200*time.Millisecond, func() error {
		if now := m.Starts(); len(lab.ChangedStarts(starts, now)) > 0 {
			starts, since = now, time.Now()
		}
		if time.Since(since) < time.Second {
			return fmt.Errorf("%s's services changed less than a second ago", m.Role)
		}
		for _, r := range []*lab.Router{m, b} {
			lines := r.FailoverLines(time.Now().Add(-2 * time.Second))
			if len(lines) > 0 {
				return fmt.Errorf("%s: one-failover busy: %s", r.Role, lines[len(lines)-1])
			}
		}
		starts := b.Starts()
		for _, d := range []string{"one-sdnat4", "one-haproxy", "haproxy", "one-wg", "wireguard-go"} {
			if starts["pid:"+d] != "" || starts[d] != "" {
				return fmt.Errorf("the backup %s runs %s", b.Role, d)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(b))
	}
}

// faultOneGate: OneGate fails as f says (errors, or answers slower than
// any client waits) while one-sdnat4 maps web's public address and
// one-haproxy balances to web, a dynamic backend. Meanwhile web withdraws
// in OneGate (no alias, no backend attributes), which nobody can see.
// During the outage every mapping and backend stays as it was (kernel and
// servers.cfg unchanged, traffic still reaching web both ways), nothing
// restarts or reloads on either router, not even for a
// recontextualization (recontext: one-failover then asks render and
// status of both, which must not call the kept state a change or drift),
// and status says that OneGate does not answer, without drift. Once
// OneGate is back, the withdrawal is applied within a few refreshes and
// status is clean again. web is published again at the end.
func faultOneGate(f sim.Fault, recontext bool) func(t *testing.T, a *appliance, m, b *lab.Router) {
	return func(t *testing.T, a *appliance, m, b *lab.Router) {
		t.Cleanup(func() { _ = a.gate.SetFaults() })
		webServed(t, a, m, true)
		converged(t, m, "one-sdnat4")
		converged(t, m, "one-haproxy")
		kernel := a.snapshot(t, m).kernel
		servers, err := m.ReadFile(serversCfg)
		if err != nil {
			t.Fatal(err)
		}
		before := map[*lab.Router]map[string]string{m: m.Starts(), b: b.Starts()}

		since := time.Now()
		if err := a.gate.SetFaults(f); err != nil {
			t.Fatal(err)
		}
		if err := a.gate.WriteDocument("vm-20", webVM(false)); err != nil {
			t.Fatal(err)
		}
		// Both daemons met the fault: two of SDNAT4's polls failed, and
		// HAProxy's refresh said so.
		const sdnatLog, haproxyLog = "/var/log/one-appliance/one-sdnat4.log", "/var/log/one-appliance/one-haproxy.log"
		if err := lab.Eventually(40*time.Second, 200*time.Millisecond, func() error {
			if n := len(m.LogLinesSince(sdnatLog, since, "OneGate failed")); n < 2 {
				return fmt.Errorf("%d failed SDNAT4 polls", n)
			}
			if len(m.LogLinesSince(haproxyLog, since, "OneGate did not answer")) == 0 {
				return fmt.Errorf("no failed HAProxy refresh")
			}
			return nil
		}); err != nil {
			t.Fatalf("%v\n%s", err, daemonLogs(m))
		}

		if recontext {
			since := a.contextualize(t, func(i int) string { return a.env[i] })
			a.reconciled(t, m, since)
			if v := serviceVerbs(m, since); len(v) > 0 {
				t.Errorf("a recontextualization during the outage ran %v\n%s", v, failoverLog(m))
			}
		}
		if d := kernel.Diff(a.snapshot(t, m).kernel); len(d) > 0 {
			t.Errorf("the kernel changed during the outage:\n%s", strings.Join(d, "\n"))
		}
		if now, _ := m.ReadFile(serversCfg); string(now) != string(servers) {
			t.Errorf("%s changed during the outage:\n%s", serversCfg, now)
		}
		probeOK(t, a.Inet, "tcp", webPublic+":80", "web")
		lbReaches(t, a, "web")
		// status names the outage, and the state kept is no drift (asked
		// of the three at once: against a slow OneGate each waits its
		// whole bound).
		says := map[string][]string{
			"one-sdnat4":  {"OneGate failing", "OneGate does not answer now (", "compared with the 1 mappings the daemon keeps"},
			"one-haproxy": {"backends: static and dynamic: OneGate does not answer now ("},
			// one-wg is a oneshot: nothing of it depends on OneGate while
			// it runs; status says it cannot read OneGate.
			"one-wg": {"OneGate: could not be read: "},
		}
		type answer struct {
			svc  string
			rep  cli.Report
			code int
			err  error
		}
		answers := make(chan answer, len(says))
		for svc := range says {
			go func() {
				rep, code, err := statusOf(m, svc)
				answers <- answer{svc, rep, code, err}
			}()
		}
		for range says {
			ans := <-answers
			if ans.err != nil {
				t.Fatal(ans.err)
			}
			svc, rep, code := ans.svc, ans.rep, ans.code
			details := strings.Join(rep.Details, "\n")
			for _, s := range says[svc] {
				if !strings.Contains(details, s) {
					t.Errorf("%s status during the outage does not say %q: exit %d %+v", svc, s, code, rep)
				}
			}
			if code != 0 || len(rep.Drift) > 0 || rep.Error != "" {
				t.Errorf("%s status during the outage: exit %d, drift %q, error %q", svc, code, rep.Drift, rep.Error)
			}
		}
		for r, s := range before {
			only(t, r, s, r.Starts())
		}
		if recontext {
			restartedDuringOutage(t, a, m)
			before[m] = m.Starts()
		}

		// OneGate is back: web's withdrawal is applied.
		if err := a.gate.SetFaults(); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		webServed(t, a, m, false)
		t.Logf("OneGate back: the change applied %s later (refresh 1 s)", time.Since(back).Round(10*time.Millisecond))
		probeRefused(t, a.Inet, "tcp", webPublic+":80")
		lbReaches(t, a, "vm1")
		converged(t, m, "one-sdnat4")
		converged(t, m, "one-haproxy")
		converged(t, m, "one-wg")
		// haproxy reloaded (new workers) for the new servers.cfg; nothing
		// else restarted.
		only(t, m, before[m], m.Starts(), "pid:haproxy")
		only(t, b, before[b], b.Starts())
		for _, svc := range []string{"one-sdnat4", "one-haproxy", "one-wg"} {
			if log, _ := m.ReadFile("/var/log/one-appliance/" + svc + ".log"); strings.Contains(string(log), gateToken) {
				t.Errorf("%s logged the OneGate token", svc)
			}
		}

		if err := a.gate.WriteDocument("vm-20", webVM(true)); err != nil {
			t.Fatal(err)
		}
		webServed(t, a, m, true)
	}
}

// restartedDuringOutage: the daemons restarted while OneGate does not
// answer keep serving what they served, from the answers they kept on disk
// (/run/<service>/onegate): one-sdnat4 stopped and started (as one-failover
// does on BACKUP then MASTER: stop removes the mappings) maps web again,
// and a restarted one-haproxy balances to web, its dynamic backend, again.
func restartedDuringOutage(t *testing.T, a *appliance, m *lab.Router) {
	t.Helper()
	since := time.Now()
	for _, verb := range []string{"stop", "start"} {
		if out, err := m.RC("one-sdnat4", verb); err != nil {
			t.Fatalf("one-sdnat4 %s during the outage: %v\n%s", verb, err, out)
		}
	}
	if out, err := m.RC("one-haproxy", "restart"); err != nil {
		t.Fatalf("one-haproxy restart during the outage: %v\n%s", err, out)
	}
	start := time.Now()
	if err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		if got := mapsWeb(m); got != "address rule" || !balancesWeb(m) {
			return fmt.Errorf("%s mapped %q, web in %s %t", webPublic, got, serversCfg, balancesWeb(m))
		}
		return nil
	}); err != nil {
		t.Fatalf("restarted during the OneGate outage: %v\n%s", err, daemonLogs(m))
	}
	t.Logf("restarted during the outage: web mapped and balanced again %s after the start", time.Since(start).Round(10*time.Millisecond))
	probeOK(t, a.Inet, "tcp", webPublic+":80", "web")
	lbReaches(t, a, "web")
	for _, svc := range []string{"one-sdnat4", "one-haproxy"} {
		if len(m.LogLinesSince("/var/log/one-appliance/"+svc+".log", since, "kept on disk")) == 0 {
			t.Errorf("the restarted %s does not say it uses the answers kept on disk\n%s", svc, daemonLogs(m))
		}
	}
}
