package wg

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/fsroot"
)

func desired(t *testing.T, keys *seqKeys, extra ...string) (Spec, Desired) {
	t.Helper()
	spec := mustSpec(t, extra...)
	r, err := Resolve(spec, Choose(nil), keys, t0)
	must(t, err)
	return spec, Render(spec, r.Config)
}

// checkDevice compares the fake device with d.
func checkDevice(t *testing.T, f *fakeSystem, d Desired) {
	t.Helper()
	dev, err := f.Device(d.Device)
	if err != nil {
		t.Fatalf("device %s: %v (links %v)", d.Device, err, f.linkNames())
	}
	if _, changes := d.Changes(dev); len(changes) > 0 {
		t.Errorf("device differs: %v", changes)
	}
	l := f.links[d.Device]
	if !l.up || len(l.addrs) != 1 || l.addrs[0].IPNet.String() != d.Addr.String() {
		t.Errorf("link: up=%v addrs=%v", l.up, l.addrs)
	}
	if v := f.sc.Values[ForwardingKey(d.Device)]; v != "1" {
		t.Errorf("forwarding %q", v)
	}
}

func TestApplyUserspace(t *testing.T) {
	f := newFakeSystem(false)
	f.addLink("canary", "veth") // someone else's link
	root := fsroot.Root(t.TempDir())
	sys := f.system(root)
	ctx := context.Background()
	_, d := desired(t, &seqKeys{})
	res, err := sys.Apply(ctx, d)
	must(t, err)
	if res.Mode != modeUserGo || !res.Created || res.PID == 0 || f.starts != 1 {
		t.Fatalf("first apply: %+v starts=%d", res, f.starts)
	}
	checkDevice(t, f, d)
	if b, _ := root.ReadFile(PIDFile); strings.TrimSpace(string(b)) != "1001" {
		t.Errorf("pid file %q", b)
	}
	// Again: nothing changes, no configure call (sessions stay).
	configures := f.configures
	res, err = sys.Apply(ctx, d)
	must(t, err)
	if len(res.Changes) != 0 || res.Created || f.configures != configures || f.starts != 1 {
		t.Errorf("second apply: %+v configures=%d starts=%d", res, f.configures-configures, f.starts)
	}
	// Drift in the live device is repaired.
	f.devs["wg0"].Peers = f.devs["wg0"].Peers[1:]
	f.devs["wg0"].ListenPort = 1
	f.links["wg0"].up = false
	f.sc.Values[ForwardingKey("wg0")] = "0"
	res, err = sys.Apply(ctx, d)
	must(t, err)
	if len(res.Changes) != 4 {
		t.Errorf("repair: %v", res.Changes)
	}
	checkDevice(t, f, d)
	live, err := sys.Inspect(ctx, d)
	must(t, err)
	if len(live.Drift) != 0 || !live.Exists {
		t.Errorf("inspect: %+v", live)
	}
	// wireguard-go dies: the next apply starts it again.
	f.crash(1001)
	live, _ = sys.Inspect(ctx, d)
	if live.Exists || len(live.Drift) != 1 {
		t.Errorf("inspect after the crash: %+v", live)
	}
	res, err = sys.Apply(ctx, d)
	must(t, err)
	if !res.Created || f.starts != 2 {
		t.Errorf("after a crash: %+v", res)
	}
	checkDevice(t, f, d)
	// Teardown twice, and the canary survives.
	for i := 0; i < 2; i++ {
		done, err := sys.Teardown(ctx, "wg0")
		must(t, err)
		if i == 0 && len(done) == 0 {
			t.Error("first teardown did nothing")
		}
		if i == 1 && len(done) != 0 {
			t.Errorf("second teardown did %v", done)
		}
		if d := cmp.Diff([]string{"canary"}, f.linkNames()); d != "" || len(f.procs) != 0 {
			t.Errorf("after teardown %d: links %v procs %v", i, f.linkNames(), f.procs)
		}
	}
	if root.Exists(PIDFile) || root.Exists(DeviceFile) {
		t.Error("runtime files left")
	}
}

func TestApplyKernel(t *testing.T) {
	f := newFakeSystem(true)
	sys := f.system(fsroot.Root(t.TempDir()))
	ctx := context.Background()
	keys := &seqKeys{}
	_, d := desired(t, keys)
	res, err := sys.Apply(ctx, d)
	must(t, err)
	if res.Mode != modeKernel || f.starts != 0 {
		t.Fatalf("kernel: %+v starts=%d", res, f.starts)
	}
	checkDevice(t, f, d)
	// A peer less and another key for one: only those change.
	d2 := d
	d2.Peers = append([]DesiredPeer{}, d.Peers[:4]...)
	psk, _ := keys.PresharedKey()
	d2.Peers[1].PSK = psk
	cfg, changes := d2.Changes(f.devs["wg0"])
	if len(changes) != 2 || cfg.PrivateKey != nil || cfg.ListenPort != nil || len(cfg.Peers) != 2 || !cfg.Peers[1].Remove || cfg.ReplacePeers {
		t.Errorf("changes %v cfg %+v", changes, cfg)
	}
	_, err = sys.Apply(ctx, d2)
	must(t, err)
	checkDevice(t, f, d2)
	// The device moves to another name with another context: stop removes
	// the one applied and the one named.
	_, d3 := desired(t, keys, "ONEAPP_VNF_WG_DEVICE=wg7")
	_, err = sys.Apply(ctx, d3)
	must(t, err)
	if _, err := sys.Teardown(ctx, "wg7"); err != nil {
		t.Fatal(err)
	}
	if len(f.links) != 0 {
		t.Errorf("left %v", f.linkNames())
	}
}

// A link with the device's name that is not WireGuard is never touched.
func TestApplyForeignLink(t *testing.T) {
	f := newFakeSystem(false)
	f.addLink("wg0", "veth")
	sys := f.system(fsroot.Root(t.TempDir()))
	_, d := desired(t, &seqKeys{})
	_, err := sys.Apply(context.Background(), d)
	if err == nil || !strings.Contains(err.Error(), VarDevice) {
		t.Fatalf("apply over a veth: %v", err)
	}
	if _, err := sys.Teardown(context.Background(), "wg0"); err != nil {
		t.Fatal(err)
	}
	// A TUN device of someone else (no WireGuard behind it) survives too.
	f.delLink("wg0")
	f.addLink("wg0", linkTun)
	if _, err := sys.Teardown(context.Background(), "wg0"); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"wg0"}, f.linkNames()); d != "" {
		t.Errorf("links %v", f.linkNames())
	}
}

func TestTeardownEmpty(t *testing.T) {
	f := newFakeSystem(false)
	sys := f.system(fsroot.Root(t.TempDir()))
	done, err := sys.Teardown(context.Background(), "wg0")
	if err != nil || len(done) != 0 {
		t.Errorf("%v %v", done, err)
	}
}

func TestApplyStartFails(t *testing.T) {
	f := newFakeSystem(false)
	f.failStart = context.DeadlineExceeded
	sys := f.system(fsroot.Root(t.TempDir()))
	_, d := desired(t, &seqKeys{})
	if _, err := sys.Apply(context.Background(), d); err == nil || !strings.Contains(err.Error(), "wireguard-go") {
		t.Fatalf("%v", err)
	}
}

func TestInspectHandshakes(t *testing.T) {
	f := newFakeSystem(true)
	sys := f.system(fsroot.Root(t.TempDir()))
	sys.Now = func() time.Time { return t0 }
	_, d := desired(t, &seqKeys{})
	_, err := sys.Apply(context.Background(), d)
	must(t, err)
	f.devs["wg0"].Peers[0].LastHandshakeTime = t0.Add(-time.Minute)
	f.devs["wg0"].Peers[1].LastHandshakeTime = t0.Add(-time.Hour)
	live, err := sys.Inspect(context.Background(), d)
	must(t, err)
	if !strings.Contains(strings.Join(live.Details, "\n"), "5 peers, 1 with a handshake") {
		t.Errorf("details %v", live.Details)
	}
}

// wireguard-go killed a moment before start or stop runs: its TUN device is
// still listed but gone when deleted (ENODEV), which is no error.
func TestApplyAfterKill(t *testing.T) {
	f := newFakeSystem(false)
	sys := f.system(fsroot.Root(t.TempDir()))
	ctx := context.Background()
	_, d := desired(t, &seqKeys{})
	res, err := sys.Apply(ctx, d)
	must(t, err)
	f.kill(res.PID)
	res, err = sys.Apply(ctx, d)
	must(t, err)
	if !res.Created || f.starts != 2 {
		t.Errorf("after the kill: %+v starts=%d", res, f.starts)
	}
	checkDevice(t, f, d)
	f.kill(res.PID)
	if _, err := sys.Teardown(ctx, "wg0"); err != nil {
		t.Errorf("teardown after the kill: %v", err)
	}
	if len(f.links) != 0 {
		t.Errorf("links %v", f.linkNames())
	}
}
