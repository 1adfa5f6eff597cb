package sdnat4

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/golden"
	"github.com/hypercx/vrouter/pkg/ifaddr/ifaddrtest"
	"github.com/hypercx/vrouter/pkg/netfilter/netfiltertest"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/onegate"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// fixtures returns a copy of the simulator's standard fixtures with
// testdata/<name>.onegate/ laid over them.
func fixtures(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	if err := sim.CopyFixtures(sim.Fixtures(), dir); err != nil {
		t.Fatal(err)
	}
	over := filepath.Join("testdata", name+".onegate")
	if _, err := os.Stat(over); err == nil {
		if err := sim.CopyFixtures(over, dir); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// simulate runs the simulator on dir and points env at it.
func simulate(t *testing.T, dir string, env onecontext.Env) (*sim.Server, onecontext.Env) {
	t.Helper()
	s := sim.New(dir, "golden-token")
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	if env.Has("ONEGATE_ENDPOINT") {
		env = env.With("ONEGATE_ENDPOINT=" + srv.URL)
	}
	return s, env
}

// TestRender renders every testdata/<case>.env against the simulator
// (standard fixtures, with testdata/<case>.onegate/ over them).
func TestRender(t *testing.T) {
	for _, c := range golden.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			_, env := simulate(t, fixtures(t, c.Name), c.Env)
			golden.Check(t, c.Name, golden.Render(t, Service{}, env))
		})
	}
}

func TestRenderOnly(t *testing.T) {
	env := onecontext.FromPairs(strings.Fields(guideEnv)...)
	_, env = simulate(t, fixtures(t, "guide-example"), env)
	var out bytes.Buffer
	rt := &cli.Runtime{Env: env, Root: "/nonexistent", Stdout: &out, Log: slog.New(slog.DiscardHandler)}
	arts, err := Service{}.Render(context.Background(), rt)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.PrintArtefacts(&out, arts, "addr:lo"); err != nil {
		t.Fatal(err)
	}
	if out.String() != "203.0.113.20/32 label SDNAT4\n203.0.113.50/32 label SDNAT4\n" {
		t.Fatalf("render --only addr:lo:\n%s", out.String())
	}
}

// kernel is the fake netlink: lo's addresses (ifaddrtest) and a conntrack
// table whose entries are deleted by filter, as the kernel does.
type kernel struct {
	*ifaddrtest.Netlink
	mu    sync.Mutex
	flows []*netlink.ConntrackFlow
}

// flow adds a conntrack entry: orig src -> orig dst, translated to the
// reply src/dst.
func (k *kernel) flow(src, dst, replySrc, replyDst string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.flows = append(k.flows, &netlink.ConntrackFlow{
		Forward: netlink.IPTuple{SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)},
		Reverse: netlink.IPTuple{SrcIP: net.ParseIP(replySrc), DstIP: net.ParseIP(replyDst)},
	})
}

func (k *kernel) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.flows)
}

func (k *kernel) ConntrackDeleteFilters(_ netlink.ConntrackTableType, _ netlink.InetFamily, filters ...netlink.CustomConntrackFilter) (uint, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var keep []*netlink.ConntrackFlow
	var n uint
	for _, f := range k.flows {
		if slices.ContainsFunc(filters, func(c netlink.CustomConntrackFilter) bool { return c.MatchConntrackFlow(f) }) {
			n++
			continue
		}
		keep = append(keep, f)
	}
	k.flows = keep
	return n, nil
}

// world is a router with fake iptables and netlink, and the simulator.
type world struct {
	nf  *netfiltertest.IPTables
	nl  *kernel
	sim *sim.Server
	env onecontext.Env
	svc Service
}

func newWorld(t *testing.T, env string) *world {
	t.Helper()
	w := &world{nf: netfiltertest.New(), nl: &kernel{Netlink: ifaddrtest.New()}}
	w.sim, w.env = simulate(t, fixtures(t, "guide-example"), onecontext.FromPairs(strings.Fields(env)...))
	w.svc = Service{Netlink: func() (Netlink, func(), error) { return w.nl, func() {}, nil }}
	// Someone else's rule and address, which must survive everything.
	if err := w.nf.Run("-t nat -A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE"); err != nil {
		t.Fatal(err)
	}
	if err := w.nl.Assign("lo", "198.51.100.99/32", "lo"); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) rt() *cli.Runtime {
	return &cli.Runtime{Env: w.env, Root: "/nonexistent", Netfilter: w.nf.Applier(), Log: slog.New(slog.DiscardHandler), Stdout: &bytes.Buffer{}}
}

func (w *world) applier() *Applier { return NewApplier(w.nf.Applier(), w.nl) }

// desired is what OneGate says now.
func (w *world) desired(t *testing.T) Desired {
	t.Helper()
	s, err := FromContext(w.env, "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := w.svc.desired(context.Background(), w.rt(), s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (w *world) writes() int { return w.nf.Writes + w.nl.Writes }

func TestApplyTwiceTeardownTwiceCanary(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, guideEnv)
	before, addrsBefore := w.nf.Dump(), w.nl.Addrs("lo")
	a := w.applier()
	d := w.desired(t)
	res, err := a.Apply(ctx, d)
	if err != nil || !res.Changed || res.Added != 2 || res.Rules.Jumps != 2 {
		t.Fatalf("first apply: %+v %v", res, err)
	}
	if d := cmp.Diff([]string{"127.0.0.1/8 lo", "198.51.100.99/32 lo", "203.0.113.20/32 SDNAT4", "203.0.113.50/32 SDNAT4"}, w.nl.Addrs("lo")); d != "" {
		t.Error("lo:", d)
	}
	post, _ := w.nf.Rules("nat", "POSTROUTING")
	pre, _ := w.nf.Rules("nat", "PREROUTING")
	if post[0] != "-m comment --comment one-sdnat4 -j SNAT4" || pre[0] != "-m comment --comment one-sdnat4 -j DNAT4" {
		t.Errorf("not hooked first: %q %q", pre, post)
	}
	writes := w.writes()
	res, err = a.Apply(ctx, d)
	if err != nil || res.Changed || w.writes() != writes {
		t.Fatalf("an unchanged apply wrote %d times: %+v %v", w.writes()-writes, res, err)
	}
	if drift, err := a.Diff(ctx, d); err != nil || len(drift) != 0 {
		t.Fatalf("drift after apply: %v %v", drift, err)
	}
	for i := 0; i < 2; i++ {
		if err := a.Teardown(ctx); err != nil {
			t.Fatalf("teardown %d: %v", i, err)
		}
		if d := cmp.Diff(before, w.nf.Dump()); d != "" {
			t.Fatalf("teardown %d: rules left or canary lost (-before +after):\n%s", i, d)
		}
		if d := cmp.Diff(addrsBefore, w.nl.Addrs("lo")); d != "" {
			t.Fatalf("teardown %d: lo (-before +after):\n%s", i, d)
		}
	}
}

func TestTeardownOnEmpty(t *testing.T) {
	nf, nl := netfiltertest.New(), &kernel{Netlink: ifaddrtest.New()}
	svc := Service{Netlink: func() (Netlink, func(), error) { return nl, func() {}, nil }}
	rt := &cli.Runtime{Env: onecontext.FromPairs("ETH0_IP=garbage", "ONEAPP_VNF_SDNAT4_ENABLED=maybe"), Root: "/nonexistent",
		Netfilter: nf.Applier(), Log: slog.New(slog.DiscardHandler)}
	if err := svc.Stop(context.Background(), rt); err != nil || nf.Writes != 0 || nl.Writes != 0 {
		t.Fatal(err, nf.Writes, nl.Writes)
	}
}

// A mapping that goes: its rules and address go, the others are not
// touched; one that comes is added.
func TestApplyFollowsChanges(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, guideEnv)
	a := w.applier()
	d := w.desired(t)
	if _, err := a.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	one := Render(spec(t, guideEnv), d.Mappings[1:])
	res, err := a.Apply(ctx, one)
	if err != nil || res.Removed != 1 || res.Added != 0 || res.Rules.Chains != 2 || res.Rules.Jumps != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	if d := cmp.Diff([]string{"127.0.0.1/8 lo", "198.51.100.99/32 lo", "203.0.113.50/32 SDNAT4"}, w.nl.Addrs("lo")); d != "" {
		t.Error(d)
	}
	dnat, _ := w.nf.Rules("nat", ChainDNAT)
	if d := cmp.Diff([]string{"-i eth2 -j RETURN", "-d 203.0.113.50/32 -j DNAT --to-destination 10.0.1.21"}, dnat); d != "" {
		t.Error(d)
	}
	res, err = a.Apply(ctx, d)
	if err != nil || res.Added != 1 || res.Removed != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

// Something inserted in front of SDNAT4's jump: the next apply moves the
// jump back to the head (NAT4 and others come after it), in one write.
func TestJumpKeptFirst(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, guideEnv)
	a := w.applier()
	d := w.desired(t)
	if _, err := a.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := w.nf.Run("-t nat -N NAT4-MASQ"); err != nil {
		t.Fatal(err)
	}
	if err := w.nf.Run("-t nat -I POSTROUTING 1 -m comment --comment one-nat4 -j NAT4-MASQ"); err != nil {
		t.Fatal(err)
	}
	if drift, _ := a.Diff(ctx, d); len(drift) != 1 || !strings.Contains(drift[0], "not the first rule") {
		t.Errorf("drift: %v", drift)
	}
	writes := w.writes()
	if _, err := a.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	post, _ := w.nf.Rules("nat", "POSTROUTING")
	if d := cmp.Diff([]string{"-m comment --comment one-sdnat4 -j SNAT4", "-m comment --comment one-nat4 -j NAT4-MASQ", "-s 192.0.2.0/24 -j MASQUERADE"}, post); d != "" {
		t.Error(d)
	}
	if w.writes() != writes+1 {
		t.Errorf("moving the jump took %d writes", w.writes()-writes)
	}
}

// A public address someone else already has on lo (another label) is left
// alone: not re-added, never removed.
func TestForeignAddressLeftAlone(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, guideEnv)
	if err := w.nl.Assign("lo", "203.0.113.20/32", "lo"); err != nil {
		t.Fatal(err)
	}
	a := w.applier()
	if _, err := a.Apply(ctx, w.desired(t)); err != nil {
		t.Fatal(err)
	}
	if err := a.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(w.nl.Addrs("lo"), "203.0.113.20/32 lo") {
		t.Fatal("someone else's address was removed")
	}
}

// A failed address change reports the error; the next apply converges.
func TestAddFailureThenRecovery(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, guideEnv)
	a := w.applier()
	w.nl.FailAdd = os.ErrPermission
	if _, err := a.Apply(ctx, w.desired(t)); err == nil || !strings.Contains(err.Error(), "adding 203.0.113.20/32 to lo label SDNAT4") {
		t.Fatalf("err = %v", err)
	}
	w.nl.FailAdd = nil
	if res, err := a.Apply(ctx, w.desired(t)); err != nil || res.Added != 2 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestBadContextExit2NamesVariable(t *testing.T) {
	for _, bad := range []string{
		"ONEAPP_VNF_SDNAT4_ENABLED=maybe",
		"ONEAPP_VNF_SDNAT4_REFRESH_RATE=0",
		"ONEAPP_VNF_SDNAT4_REFRESH_RATE=abc",
		"ONEAPP_VNF_SDNAT4_REFRESH_RATE=-5",
		"ONEAPP_VNF_SDNAT4_INTERFACES=eth0;eth9",
		"ONEAPP_VNF_SDNAT4_INTERFACES=$(reboot)",
		"ONEGATE_ENDPOINT=ftp://x",
		"ONEGATE_ENDPOINT=",
		"VMID=ten",
		"ONEAPP_VNF_ONEGATE_SKIP_TLS_VERIFY=maybe",
		"ONEAPP_VNF_CONNTRACKD_ENABLED=sure",
	} {
		env := onecontext.FromPairs(strings.Fields(guideEnv)...).With(bad)
		_, err := FromContext(env, "/nonexistent")
		name, _, _ := strings.Cut(bad, "=")
		if cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), name+"=") {
			t.Errorf("%s: exit %d, %v", bad, cli.ExitCode(err), err)
		}
	}
	s, err := FromContext(onecontext.FromPairs(strings.Fields(guideEnv)...).With(VarRefreshRate+"=2.5"), "/nonexistent")
	if err != nil || s.Refresh.Seconds() != 2.5 {
		t.Errorf("2.5 s: %v %v", s.Refresh, err)
	}
	// Disabled: OneGate is not needed.
	if _, err := FromContext(onecontext.FromPairs("ETH0_IP=10.0.0.1"), "/nonexistent"); err != nil {
		t.Error(err)
	}
}

// status: no drift once applied; a lost lo address and a flushed chain are
// drift (exit 3); a disabled SDNAT4 with leftovers is drift too.
func TestStatus(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, guideEnv)
	if _, err := w.applier().Apply(ctx, w.desired(t)); err != nil {
		t.Fatal(err)
	}
	rep, err := w.svc.Status(ctx, w.rt())
	if err != nil || len(rep.Drift) != 0 || !rep.Applied || !rep.Enabled {
		t.Fatalf("%+v %v", rep, err)
	}
	if !slices.Contains(rep.Details, "  203.0.113.20 -> 10.0.1.20 (VM 20)") {
		t.Errorf("details: %q", rep.Details)
	}
	if err := w.applier().Addrs.Remove([]netip.Prefix{netip.MustParsePrefix("203.0.113.50/32")}); err != nil {
		t.Fatal(err)
	}
	if err := w.nf.Run("-t nat -F DNAT4"); err != nil {
		t.Fatal(err)
	}
	rep, err = w.svc.Status(ctx, w.rt())
	if err != nil || len(rep.Drift) != 2 || !strings.Contains(strings.Join(rep.Drift, "\n"), "203.0.113.50/32 label SDNAT4 missing") {
		t.Fatalf("%q %v", rep.Drift, err)
	}
	w.env = w.env.With(VarEnabled + "=NO")
	rep, err = w.svc.Status(ctx, w.rt())
	if err != nil || len(rep.Drift) != 1 || rep.Enabled {
		t.Fatalf("disabled: %+v %v", rep, err)
	}
}

// A mapping that goes, or moves to another VM, ends its connections
// (conntrack entries in both directions); others are left alone.
func TestRemovedMappingEndsConnections(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, guideEnv)
	a := w.applier()
	d := w.desired(t)
	if _, err := a.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	w.nl.flow("198.51.100.7", "203.0.113.20", "10.0.1.20", "198.51.100.7") // into the mapping
	w.nl.flow("10.0.1.20", "198.51.100.7", "198.51.100.7", "203.0.113.20") // out of it
	w.nl.flow("198.51.100.7", "203.0.113.50", "10.0.1.21", "198.51.100.7") // the other mapping
	w.nl.flow("10.0.1.99", "198.51.100.7", "198.51.100.7", "203.0.113.2")  // someone else's
	res, err := a.Apply(ctx, Render(spec(t, guideEnv), d.Mappings[1:]))
	if err != nil || res.Ended != 2 || w.nl.count() != 2 {
		t.Fatalf("%+v %v, %d entries left", res, err, w.nl.count())
	}
	// 203.0.113.50 moves to another VM: its connections end too.
	moved := d.Mappings[1:]
	moved[0].Internal = netip.MustParseAddr("10.0.1.22")
	if res, err := a.Apply(ctx, Render(spec(t, guideEnv), moved)); err != nil || res.Ended != 1 || w.nl.count() != 1 {
		t.Fatalf("moved: %+v %v, %d entries left", res, err, w.nl.count())
	}
	// stop leaves connections alone (on a failover, conntrackd would pass
	// the deletions on to the new master).
	w.nl.flow("198.51.100.7", "203.0.113.50", "10.0.1.22", "198.51.100.7")
	if err := a.Teardown(ctx); err != nil || w.nl.count() != 2 {
		t.Fatalf("teardown: %v, %d entries left", err, w.nl.count())
	}
}

// While OneGate does not answer, the running daemon keeps its mappings:
// status compares the kernel with them (no drift, the outage named) and
// render prints them, instead of failing or calling them drift; both ask
// OneGate a short bounded question. Without a daemon OneGate answered,
// the outage is status's error.
func TestStatusAndRenderDuringOutage(t *testing.T) {
	w := newWorld(t, guideEnv+" ONEAPP_VNF_SDNAT4_REFRESH_RATE=1")
	root := t.TempDir()
	var gates []onegate.Config
	var mu sync.Mutex
	w.svc.Gate = func(c onegate.Config, l *slog.Logger) (Gate, func(), error) {
		mu.Lock()
		gates = append(gates, c)
		mu.Unlock()
		return NewGate(c, l)
	}
	rt := func() *cli.Runtime {
		return &cli.Runtime{Env: w.env, Root: fsroot.Root(root), Netfilter: w.nf.Applier(), Log: slog.New(slog.DiscardHandler), Stdout: &bytes.Buffer{}}
	}
	render := func() string {
		t.Helper()
		arts, err := w.svc.Render(context.Background(), rt())
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := cli.PrintArtefacts(&b, arts, ""); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	want := render()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.svc.Start(ctx, rt()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	stateSays := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			b, _ := os.ReadFile(filepath.Join(root, StatePath))
			if strings.Contains(string(b), what) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the state file never said %q:\n%s", what, b)
			}
		}
	}
	stateSays(`"External": "203.0.113.50"`)

	w.sim.Inject(sim.Fault{Status: 503})
	stateSays("failing")
	rep, err := w.svc.Status(context.Background(), rt())
	if err != nil || len(rep.Drift) != 0 || !rep.Applied {
		t.Fatalf("status during the outage: %+v %v", rep, err)
	}
	if !slices.ContainsFunc(rep.Details, func(d string) bool {
		return strings.HasPrefix(d, "OneGate does not answer now (") && strings.Contains(d, "HTTP 503") && strings.HasSuffix(d, "compared with the 2 mappings the daemon keeps")
	}) {
		t.Errorf("status does not name the outage: %q", rep.Details)
	}
	if got := render(); got != want {
		t.Errorf("render during the outage:\n%s\nwant the mappings the daemon keeps:\n%s", got, want)
	}
	// Every client but the daemon's asked a short question.
	mu.Lock()
	slow := 0
	for _, c := range gates {
		if c.Timeout != onegate.QuickTimeout || c.Attempts != onegate.QuickAttempts {
			slow++
		}
	}
	if slow != 1 || len(gates) != 4 {
		t.Errorf("%d of %d OneGate clients were not quick ones (the daemon's alone may wait)", slow, len(gates))
	}
	mu.Unlock()

	// No daemon (another root): the outage is the error.
	other := rt()
	other.Root = fsroot.Root(t.TempDir())
	if _, err := w.svc.Status(context.Background(), other); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("status without a daemon during the outage: %v", err)
	}
}

// The state file follows every change of what the daemon keeps, the NICs
// of a mapping included (render and status rebuild its rules from them
// during an outage), and status shows the daemon's last apply failure.
func TestStateFile(t *testing.T) {
	m := Mapping{External: netip.MustParseAddr("203.0.113.20"), Internal: netip.MustParseAddr("10.0.1.20"), VM: 20, In: "eth1", Out: "eth0"}
	moved := m
	moved.Out = "eth2"
	a, b := stateOf(Poll{Enabled: true, Answered: true, Mappings: []Mapping{m}}), stateOf(Poll{Enabled: true, Answered: true, Mappings: []Mapping{moved}})
	if a.equal(b) {
		t.Error("a mapping moved to another NIC leaves the state file as it was")
	}
	if !a.equal(stateOf(Poll{Enabled: true, Answered: true, Mappings: []Mapping{m}})) {
		t.Error("an unchanged poll rewrites the state file")
	}

	w := newWorld(t, guideEnv)
	root := t.TempDir()
	rt := w.rt()
	rt.Root = fsroot.Root(root)
	st := stateOf(Poll{Enabled: true, Answered: true, Mappings: []Mapping{m}, Err: errors.New("restoring nat table: iptables-restore: exit status 4")})
	b2, _ := json.Marshal(st)
	if _, err := rt.Root.WriteFile(StatePath, b2, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := w.svc.Status(context.Background(), rt)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.Details, "daemon: the last apply failed: restoring nat table: iptables-restore: exit status 4") {
		t.Errorf("status does not show the daemon's failure: %q", rep.Details)
	}

	// The file of a daemon that died (killed, never removed it) is no
	// daemon: status says so, and an outage is not hidden behind it.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	st.PID = dead.Process.Pid
	b2, _ = json.Marshal(st)
	if _, err := rt.Root.WriteFile(StatePath, b2, 0o644); err != nil {
		t.Fatal(err)
	}
	if rep, err := w.svc.Status(context.Background(), rt); err != nil || !slices.Contains(rep.Details, "daemon: not running") {
		t.Errorf("a dead daemon's state file: %q %v", rep.Details, err)
	}
	w.sim.Inject(sim.Fault{Status: 503})
	if _, err := w.svc.Status(context.Background(), rt); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Errorf("status during an outage with a dead daemon's state file: %v", err)
	}
}

// New public addresses are announced (gratuitous ARP) on the NIC of their
// network, once: an unchanged apply announces nothing, a returning address
// is announced again.
func TestApplyAnnouncesNewAddresses(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, guideEnv)
	var sent []string
	a := w.applier()
	a.Announce = func(dev string, addrs []netip.Addr) error {
		for _, x := range addrs {
			sent = append(sent, dev+" "+x.String())
		}
		return nil
	}
	d := w.desired(t)
	if _, err := a.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range d.Mappings {
		if m.Out != "" {
			want = append(want, m.Out+" "+m.External.String())
		}
	}
	if len(want) == 0 {
		t.Fatal("the guide example maps no address on a NIC of the router")
	}
	if d := cmp.Diff(want, sent); d != "" {
		t.Fatalf("announced (-want +got):\n%s", d)
	}
	sent = nil
	if _, err := a.Apply(ctx, d); err != nil || len(sent) != 0 {
		t.Fatalf("an unchanged apply announced %v (%v)", sent, err)
	}
	if err := a.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, d); err != nil || len(sent) != len(want) {
		t.Fatalf("re-added addresses announced %v, want %v (%v)", sent, want, err)
	}
}
