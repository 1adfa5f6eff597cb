package failover

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/conntrackd"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/golden"
	"github.com/hypercx/vrouter/pkg/keepalived"
	"github.com/hypercx/vrouter/pkg/netfilter/netfiltertest"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/openrc"
)

func TestRender(t *testing.T) {
	for _, c := range golden.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			golden.Check(t, c.Name, golden.Render(t, Service{}, c.Env))
		})
	}
}

type okChecker struct {
	mu    sync.Mutex
	err   error
	calls int
}

func (c *okChecker) Check(context.Context, string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return c.err
}

type fakeLinks struct{ up []string }

func (f *fakeLinks) Up(nic string) error {
	f.up = append(f.up, nic)
	if nic == "eth9" {
		return errors.New("no such NIC")
	}
	return nil
}

type rig struct {
	root  fsroot.Root
	rc    *fakeRC
	chk   *okChecker
	links *fakeLinks
	obs   *fakeObserver
	svc   Service
}

func newRig(t *testing.T, installed ...string) *rig {
	r := &rig{root: fsroot.Root(t.TempDir()), rc: newFakeRC(installed...), chk: &okChecker{}, links: &fakeLinks{}, obs: &fakeObserver{}}
	r.svc = Service{
		Services: func(fsroot.Root) openrc.Services { return r.rc },
		Checker:  r.chk, Links: r.links,
		Observer: func(fsroot.Root) Observer { return r.obs },
	}
	return r
}

func (r *rig) runtime(env string) *cli.Runtime {
	return &cli.Runtime{Env: onecontext.FromPairs(strings.Fields(env)...), Root: r.root, Log: slog.New(slog.DiscardHandler), Stdout: &bytes.Buffer{}}
}

func (r *rig) configure(t *testing.T, env string) error {
	t.Helper()
	r.rc.reset()
	return r.svc.Configure(context.Background(), r.runtime(env))
}

func (r *rig) keepalivedCalls() []string {
	var out []string
	for _, c := range r.rc.calls() {
		if strings.HasPrefix(c, "keepalived ") {
			out = append(out, c)
		}
	}
	return out
}

const floating = "VROUTER_KEEPALIVED_ID=10 ETH0_VROUTER_IP=203.0.113.1 ETH0_GATEWAY=203.0.113.254 ETH1_IP=10.0.0.2 ETH1_VROUTER_IP=10.0.0.1"

// configure on a machine where nothing runs starts keepalived and the
// daemon; again with the same context changes nothing (the daemon re-reads
// its context); a change that keeps the VRRP layout reloads keepalived;
// one that changes it restarts keepalived.
func TestConfigureConverges(t *testing.T) {
	r := newRig(t, "keepalived", "one-failover", "conntrackd")
	if err := r.configure(t, floating); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"keepalived start", "one-failover start"}, r.rc.calls()); d != "" {
		t.Fatal(d)
	}
	if d := cmp.Diff([]string{"eth0"}, r.links.up); d != "" {
		t.Fatalf("floating-only NIC not brought up: %s", d)
	}
	for _, p := range []string{keepalived.MainFile, keepalived.GlobalFile, keepalived.VRRPFile} {
		if !r.root.Exists(p) {
			t.Fatalf("%s not written", p)
		}
	}
	for _, step := range []struct {
		env  string
		want []string
	}{
		{floating, nil},
		{floating + " ONEAPP_VNF_NAT4_ENABLED=YES", nil}, // not keepalived's business
		{floating + " ONEAPP_VNF_KEEPALIVED_PRIORITY=150", []string{"keepalived reload"}},
		{floating + " ONEAPP_VNF_KEEPALIVED_PRIORITY=150 ONEAPP_VROUTER_ETH1_VIP1=10.0.0.100", []string{"keepalived reload"}},
		{floating + " ONEAPP_VNF_KEEPALIVED_PRIORITY=150 ONEAPP_VROUTER_ETH1_VIP1=10.0.0.100", nil},
		{floating + " ONEAPP_VNF_KEEPALIVED_VRID=11", []string{"keepalived restart"}},
	} {
		if err := r.configure(t, step.env); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(step.want, r.keepalivedCalls()); d != "" {
			t.Errorf("%s: %s", step.env, d)
		}
		if !slices.Contains(r.rc.calls(), "one-failover reload") {
			t.Errorf("%s: the daemon was not told: %v", step.env, r.rc.calls())
		}
	}
}

// Bad input or a configuration keepalived rejects: exit 2 / an error,
// nothing written, nothing started or reloaded.
func TestConfigureRejects(t *testing.T) {
	r := newRig(t, "keepalived", "one-failover", "conntrackd")
	if err := r.configure(t, floating); err != nil {
		t.Fatal(err)
	}
	before, _ := r.root.ReadFile(keepalived.VRRPFile)
	for _, bad := range []string{"ONEAPP_VNF_KEEPALIVED_VRID=256", "ONEAPP_VNF_KEEPALIVED_PASSWORD=123456789",
		"ONEAPP_VNF_KEEPALIVED_PRIORITY=0", "ONEAPP_VNF_KEEPALIVED_INTERVAL=soon", "ONEAPP_VNF_KEEPALIVED_ETH1_UNICAST_PEERS=10.0.0.x",
		"ONEAPP_VNF_NAT4_ENABLED=maybe", "ONEAPP_VNF_CONNTRACKD_INTERFACE=eth7"} {
		err := r.configure(t, floating+" "+bad)
		name, _, _ := strings.Cut(bad, "=")
		if cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: exit %d %v", bad, cli.ExitCode(err), err)
		}
		if len(r.rc.calls()) != 0 {
			t.Errorf("%s: services touched: %v", bad, r.rc.calls())
		}
	}
	r.chk.err = errors.New("keepalived says no")
	if err := r.configure(t, floating+" ONEAPP_VNF_KEEPALIVED_PRIORITY=99"); err == nil || cli.ExitCode(err) != 1 {
		t.Fatalf("rejected configuration: %v", err)
	}
	if len(r.rc.calls()) != 0 {
		t.Fatalf("services touched after a rejected configuration: %v", r.rc.calls())
	}
	if after, _ := r.root.ReadFile(keepalived.VRRPFile); !bytes.Equal(before, after) {
		t.Fatal("the live vrrp.conf changed")
	}
}

func TestConfigureConntrackd(t *testing.T) {
	r := newRig(t, "keepalived", "one-failover", "conntrackd")
	on := floating + " ONEAPP_VNF_CONNTRACKD_ENABLED=YES"
	steps := []struct {
		env  string
		want string
	}{
		{on, "conntrackd start"},
		{on, ""},
		{on + " ONEAPP_VNF_CONNTRACKD_INTERFACE=eth1 ETH2_IP=10.5.0.2", "conntrackd restart"}, // a new own address to ignore
		{floating, "conntrackd stop"},
		{floating, ""},
	}
	for _, s := range steps {
		if err := r.configure(t, s.env); err != nil {
			t.Fatal(err)
		}
		var got string
		for _, c := range r.rc.calls() {
			if strings.HasPrefix(c, "conntrackd ") {
				got = c
			}
		}
		if got != s.want {
			t.Errorf("%s: %q, want %q (%v)", s.env, got, s.want, r.rc.calls())
		}
	}
	if !r.root.Exists(conntrackd.ConfigFile) {
		t.Fatal("conntrackd.conf not written")
	}
	// Synced connections need tracking with the nat table hooked before
	// NAT4 starts: the sync chain, hooked from PREROUTING and POSTROUTING,
	// removed when sync is off; someone else's rule survives.
	ipt := netfiltertest.New()
	canary := "-A POSTROUTING -o eth0 -m comment --comment canary -j MASQUERADE"
	if err := ipt.Run("-t nat " + canary); err != nil {
		t.Fatal(err)
	}
	save := func() string { b, _ := ipt.Save(context.Background(), "nat"); return string(b) }
	rt := r.runtime(on)
	rt.Netfilter = ipt.Applier()
	for i := 0; i < 2; i++ {
		if err := r.svc.Configure(context.Background(), rt); err != nil {
			t.Fatal(err)
		}
	}
	nat := save()
	for _, want := range []string{"-A " + ChainSync + " -m conntrack --ctstate INVALID -j RETURN", "-A PREROUTING -m comment --comment one-failover -j " + ChainSync,
		"-A POSTROUTING -m comment --comment one-failover -j " + ChainSync, canary} {
		if strings.Count(nat, want) != 1 {
			t.Fatalf("nat table lacks %q once:\n%s", want, nat)
		}
	}
	rt = r.runtime(floating)
	rt.Netfilter = ipt.Applier()
	for i := 0; i < 2; i++ {
		if err := r.svc.Configure(context.Background(), rt); err != nil {
			t.Fatal(err)
		}
	}
	if nat := save(); strings.Contains(nat, ChainSync) || !strings.Contains(nat, canary) {
		t.Fatalf("sync off:\n%s", nat)
	}
	r2 := newRig(t, "keepalived", "one-failover")
	if err := r2.configure(t, on); err == nil || !strings.Contains(err.Error(), "conntrackd") {
		t.Fatalf("enabled without a conntrackd script: %v", err)
	}
}

func TestConfigureWithoutScripts(t *testing.T) {
	r := newRig(t, "one-nat4")
	if err := r.configure(t, floating); err == nil || !strings.Contains(err.Error(), "install") {
		t.Fatalf("%v", err)
	}
}

func TestStatus(t *testing.T) {
	r := newRig(t, "keepalived", "one-failover", "one-router4", "one-nat4", "one-dns")
	env := floating + " ONEAPP_VNF_NAT4_ENABLED=YES"
	if err := r.configure(t, env); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, s := range []string{"one-router4", "one-nat4"} {
		_ = r.rc.Run(ctx, s, "start")
	}
	r.obs.set(obs(10, "ETH1=all"))
	rep, err := r.svc.Status(ctx, r.runtime(env))
	if err != nil || len(rep.Drift) != 0 || !rep.Applied {
		t.Fatalf("master and serving: %+v %v", rep, err)
	}
	if !strings.Contains(strings.Join(rep.Details, "\n"), "role: MASTER") {
		t.Fatalf("%v", rep.Details)
	}
	r.obs.set(obs(10, "ETH1=none"))
	rep, _ = r.svc.Status(ctx, r.runtime(env))
	if !strings.Contains(strings.Join(rep.Drift, "\n"), "backup, but one-nat4 is started") {
		t.Fatalf("backup serving not reported: %v", rep.Drift)
	}
	_ = r.rc.Run(ctx, "keepalived", "stop")
	r.obs.set(obs(0))
	rep, _ = r.svc.Status(ctx, r.runtime(env+" ONEAPP_VNF_KEEPALIVED_PRIORITY=1"))
	drift := strings.Join(rep.Drift, "\n")
	if !strings.Contains(drift, "keepalived is stopped") || !strings.Contains(drift, "vrrp.conf differs") || !strings.Contains(drift, "fault, but") {
		t.Fatalf("%v", rep.Drift)
	}
}

func TestInitScriptsCanReload(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	_, _ = root.WriteFile("/etc/init.d/a", []byte("#!/sbin/openrc-run\nextra_started_commands=\"reload\"\n"), 0o755)
	_, _ = root.WriteFile("/etc/init.d/b", []byte("#!/sbin/openrc-run\nextra_commands=\"checkconfig reload\"\n"), 0o755)
	_, _ = root.WriteFile("/etc/init.d/c", []byte("#!/sbin/openrc-run\n# reload is not supported\nextra_commands=\"reloadx\"\n"), 0o755)
	s := InitScripts{Root: root}
	if !s.CanReload("a") || !s.CanReload("b") || s.CanReload("c") || s.CanReload("missing") {
		t.Fatal("CanReload")
	}
}

// Without a VRID variable or SERVICE_ID, the VRID comes from the OneGate
// service (user guide); when OneGate cannot say, from VMID as before; a
// router without VIPs, or with a VRID, asks nothing.
func TestVRIDFromOneGateService(t *testing.T) {
	const env = "VMID=17 ETH0_IP=10.0.0.2 ETH0_VROUTER_IP=10.0.0.1"
	for _, tc := range []struct {
		name, env string
		id        int
		err       error
		want      string
		asked     bool
	}{
		{"service 300", env, 300, nil, "virtual_router_id 46", true},
		{"not in a service", env, 0, errors.New("404"), "virtual_router_id 18", true},
		{"a VRID is set", env + " VROUTER_KEEPALIVED_ID=9", 300, nil, "virtual_router_id 9", false},
		{"SERVICE_ID is set", env + " SERVICE_ID=4", 300, nil, "virtual_router_id 5", false},
		{"no VIP", "VMID=17 ETH0_IP=10.0.0.2", 300, nil, "No VRRP instance", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked := false
			svc := Service{ServiceID: func(context.Context, onecontext.Env, fsroot.Root) (int, error) {
				asked = true
				return tc.id, tc.err
			}}
			r := newRig(t)
			arts, err := svc.Render(context.Background(), r.runtime(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			var vrrp string
			for _, a := range arts {
				if a.Target == keepalived.VRRPFile {
					vrrp = string(a.Body)
				}
			}
			if !strings.Contains(vrrp, tc.want) || asked != tc.asked {
				t.Fatalf("asked %v, want %v; want %q in:\n%s", asked, tc.asked, tc.want, vrrp)
			}
		})
	}
}
