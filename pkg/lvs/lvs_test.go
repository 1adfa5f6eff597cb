package lvs

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/golden"
	"github.com/hypercx/vrouter/pkg/keepalived"
	"github.com/hypercx/vrouter/pkg/lb/lbtest"
	"github.com/hypercx/vrouter/pkg/netfilter/netfiltertest"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/openrc"
)

// fakeResolve gives web.example two addresses and nothing else any.
func fakeResolve(_ context.Context, host string) ([]netip.Addr, error) {
	if host == "web.example" {
		return []netip.Addr{netip.MustParseAddr("172.20.0.121"), netip.MustParseAddr("172.20.0.120"), netip.MustParseAddr("::ffff:172.20.0.120")}, nil
	}
	return nil, errors.New("no such host")
}

// Every rendered lvs.conf is compared with its golden file and, where
// keepalived is installed, judged by keepalived -t; the mangle payload is
// validated. Contexts with ONEGATE_ENDPOINT=sim render against the OneGate
// simulator.
func TestRender(t *testing.T) {
	for _, c := range golden.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			out := golden.Render(t, Service{Resolve: fakeResolve}, lbtest.Env(t, c.Name, c.Env))
			golden.Check(t, c.Name, out)
			bad := strings.HasPrefix(c.Name, "bad-")
			if bad != bytes.HasPrefix(out, []byte("error (exit 2)")) {
				t.Fatalf("bad-* cases must exit 2 and only they:\n%s", out)
			}
			conf, ok := bytes.CutPrefix(out, []byte("### "+ConfigFile+"\n"))
			if !ok {
				return
			}
			conf, _, _ = bytes.Cut(conf, []byte("### iptables:mangle\n"))
			checkConf(t, conf)
			for _, w := range []string{"MISC_CHECK", " 22 {", "reboot"} {
				if bytes.Contains(conf, []byte(w)) {
					t.Fatalf("injected text %q reached lvs.conf:\n%s", w, conf)
				}
			}
		})
	}
}

// checkConf runs keepalived -t on conf when keepalived is installed.
func checkConf(t *testing.T, conf []byte) {
	t.Helper()
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Log("keepalived not installed: configuration not checked by keepalived")
		return
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lvs.conf"), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(main, []byte("include "+dir+"/lvs.conf\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (keepalived.Exec{}).Check(context.Background(), main); err != nil {
		t.Fatalf("%v\n%s", err, conf)
	}
}

func TestEmptyIsValid(t *testing.T) {
	checkConf(t, Empty())
}

// recordingChecker accepts everything but what contains reject.
type recordingChecker struct {
	mu     sync.Mutex
	reject string
	calls  int
}

func (c *recordingChecker) Check(_ context.Context, main string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	b, err := os.ReadFile(filepath.Join(filepath.Dir(main), "conf.d", "lvs.conf"))
	if err != nil {
		return err
	}
	if c.reject != "" && bytes.Contains(b, []byte(c.reject)) {
		return errors.New("bad virtual server")
	}
	return nil
}

func newLVS(t *testing.T) (LVS, *openrc.Fake, *netfiltertest.IPTables, *recordingChecker) {
	t.Helper()
	root := fsroot.Root(t.TempDir())
	rc := openrc.NewFake(keepalived.Service)
	ipt := netfiltertest.New()
	chk := &recordingChecker{}
	return LVS{Root: root, RC: rc, Netfilter: ipt.Applier(), Files: keepalived.Files{Root: root, Checker: chk}}, rc, ipt, chk
}

// parse reads NAME=value lines.
func parse(s string) onecontext.Env { return onecontext.FromPairs(strings.Split(s, "\n")...) }

func testSpec(t *testing.T, env string) Spec {
	t.Helper()
	sp, err := FromContext(parse(env), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

const allPorts = `ETH0_IP=10.0.1.1
ONEAPP_VNF_LB_ENABLED=YES
ONEAPP_VNF_LB0_IP=10.0.1.1
ONEAPP_VNF_LB0_PROTOCOL=TCP
ONEAPP_VNF_LB0_SERVER0_HOST=172.20.0.104
ONEAPP_VNF_LB1_IP=10.0.1.1
ONEAPP_VNF_LB1_PROTOCOL=UDP
ONEAPP_VNF_LB1_PORT=53`

func TestApplyAndStop(t *testing.T) {
	l, rc, ipt, chk := newLVS(t)
	ctx := context.Background()
	// Someone else's: a canary rule in the mangle table, keepalived's vrrp.conf.
	if err := ipt.Run("-t mangle -A PREROUTING -d 10.9.9.9/32 -j MARK --set-xmark 0x1/0xffffffff"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Root.WriteFile(keepalived.VRRPFile, []byte("# vrrp\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	rc.States[keepalived.Service] = openrc.Started
	sp := testSpec(t, allPorts)
	d := Render(sp, sp.LBs)
	res, err := l.Apply(ctx, d)
	if err != nil || !res.FileChanged || !res.Reloaded || !res.RulesChanged {
		t.Fatalf("first apply: %+v %v", res, err)
	}
	rules, _ := ipt.Rules("mangle", ChainFwmark)
	if len(rules) != 1 || rules[0] != "-d 10.0.1.1/32 -p tcp -j MARK --set-xmark 0x2710/0xffffffff" {
		t.Fatalf("marks: %v", rules)
	}
	res, err = l.Apply(ctx, d)
	if err != nil || res.FileChanged || res.Reloaded || res.RulesChanged || chk.calls != 1 {
		t.Fatalf("unchanged: %+v %v (checks %d)", res, err, chk.calls)
	}
	// A configuration keepalived rejects leaves the live one.
	chk.reject = "172.20.0.200"
	sp2 := testSpec(t, allPorts+"\nONEAPP_VNF_LB0_SERVER1_HOST=172.20.0.200")
	if _, err := l.Apply(ctx, Render(sp2, sp2.LBs)); err == nil {
		t.Fatal("a rejected configuration was applied")
	}
	if b, _ := l.Root.ReadFile(ConfigFile); !bytes.Equal(b, d.Config) {
		t.Fatal("the live lvs.conf changed")
	}
	// Without all-ports LBs the chain goes away.
	sp3 := testSpec(t, "ETH0_IP=10.0.1.1\nONEAPP_VNF_LB_ENABLED=YES\nONEAPP_VNF_LB1_IP=10.0.1.1\nONEAPP_VNF_LB1_PORT=53")
	if _, err := l.Apply(ctx, Render(sp3, sp3.LBs)); err != nil {
		t.Fatal(err)
	}
	if _, ok := ipt.Rules("mangle", ChainFwmark); ok {
		t.Fatal("the mark chain is left without all-ports LBs")
	}
	// Stop twice: one reload, lvs.conf empty, no chain; the canary and
	// vrrp.conf untouched.
	rc.Reset()
	for i := 0; i < 2; i++ {
		if err := l.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(rc.Calls, ","); got != "keepalived reload" {
		t.Fatalf("calls: %s", got)
	}
	if b, _ := l.Root.ReadFile(ConfigFile); !bytes.Equal(b, Empty()) {
		t.Fatalf("lvs.conf after stop: %s", b)
	}
	if r, _ := ipt.Rules("mangle", "PREROUTING"); len(r) != 1 || !strings.Contains(r[0], "10.9.9.9") {
		t.Fatalf("the canary: %v", r)
	}
	if b, _ := l.Root.ReadFile(keepalived.VRRPFile); string(b) != "# vrrp\n" {
		t.Fatal("vrrp.conf changed")
	}
	// Stop on an empty system: nothing to do, no reload.
	empty, erc, _, _ := newLVS(t)
	erc.States[keepalived.Service] = openrc.Started
	if err := empty.Stop(ctx); err != nil || len(erc.Calls) != 0 {
		t.Fatalf("stop on an empty system: %v %v", err, erc.Calls)
	}
}

// keepalived that does not run is not started by one-lvs (one-failover
// owns it) and reads the file when it starts; once it runs, the next apply
// reloads it.
func TestApplyWithKeepalivedStopped(t *testing.T) {
	l, rc, _, _ := newLVS(t)
	sp := testSpec(t, allPorts)
	d := Render(sp, sp.LBs)
	res, err := l.Apply(context.Background(), d)
	if err != nil || res.Reloaded || res.KeepalivedState != openrc.Stopped || len(rc.Calls) != 0 {
		t.Fatalf("%+v %v %v", res, err, rc.Calls)
	}
	rc.States[keepalived.Service] = openrc.Started
	if res, err := l.Apply(context.Background(), d); err != nil || !res.Reloaded {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestResolveHosts(t *testing.T) {
	sp := testSpec(t, "ETH0_IP=10.0.1.1\nONEAPP_VNF_LB_ENABLED=YES\nONEAPP_VNF_LB0_IP=10.0.1.1\nONEAPP_VNF_LB0_PORT=80\n"+
		"ONEAPP_VNF_LB0_SERVER0_HOST=172.20.0.120\nONEAPP_VNF_LB0_SERVER0_PORT=80\n"+
		"ONEAPP_VNF_LB0_SERVER1_HOST=web.example\nONEAPP_VNF_LB0_SERVER1_PORT=80\n"+
		"ONEAPP_VNF_LB0_SERVER2_HOST=nowhere.example\nONEAPP_VNF_LB0_SERVER2_PORT=80")
	lbs, problems := ResolveHosts(context.Background(), fakeResolve, sp.LBs)
	var got []string
	for _, s := range lbs[0].Servers {
		got = append(got, s.HostPort())
	}
	if strings.Join(got, " ") != "172.20.0.120:80 172.20.0.121:80" {
		t.Fatalf("servers: %v (each address once)", got)
	}
	if len(problems) != 1 || !strings.Contains(problems[0], "nowhere.example (ONEAPP_VNF_LB0_SERVER2)") {
		t.Fatalf("problems: %v", problems)
	}
	if sp.LBs[0].Servers[1].Host != "web.example" {
		t.Fatal("ResolveHosts modified its input")
	}
}
