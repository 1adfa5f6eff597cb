package wg

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/golden"
	"github.com/hypercx/vrouter/pkg/onegate"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

func TestRender(t *testing.T) {
	for _, c := range golden.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			golden.Check(t, c.Name, golden.Render(t, Service{Keys: &seqKeys{}}, c.Env))
		})
	}
}

const simToken = "wg-test-token"

// rig is a OneGate simulator (the fixtures' virtual router 3 with VMs 10
// and 11) and router instances, each a fake kernel with its own root.
type rig struct {
	t    *testing.T
	gate *sim.Server
	url  string
	keys *seqKeys
	now  time.Time
}

type instance struct {
	vmid int
	f    *fakeSystem
	root fsroot.Root
}

func newRig(t *testing.T) *rig {
	g := sim.New(sim.Fixtures(), simToken)
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return &rig{t: t, gate: g, url: srv.URL, keys: &seqKeys{}, now: t0}
}

func (r *rig) instance(vmid int) *instance {
	return &instance{vmid: vmid, f: newFakeSystem(false), root: fsroot.Root(r.t.TempDir())}
}

func (r *rig) service(in *instance) Service {
	return Service{
		System: func(rt *cli.Runtime) (*System, func(), error) {
			s := in.f.system(rt.Root)
			s.Log = rt.Log
			return s, func() {}, nil
		},
		Gate: func(rt *cli.Runtime, readOnly bool) (Gate, error) {
			cfg, err := onegate.ConfigFromContext(rt.Env, rt.Root)
			if err != nil {
				return nil, err
			}
			cfg.Backoff, cfg.MaxBackoff, cfg.Timeout = time.Millisecond, 2*time.Millisecond, 2*time.Second
			if readOnly {
				cfg.Attempts = 1
			}
			return onegate.New(cfg, rt.Log)
		},
		Keys: r.keys,
		Now:  func() time.Time { return r.now },
	}
}

// run runs one-wg with the guide's context (plus extra) as in.
func (r *rig) run(in *instance, extra string, args ...string) (int, string, string) {
	r.t.Helper()
	environ := strings.Fields(guideEnv + " " + extra)
	if !strings.Contains(extra, "ONEGATE_ENDPOINT=") {
		environ = append(environ, "ONEGATE_ENDPOINT="+r.url)
	}
	environ = append(environ, "TOKENTXT="+simToken, "VMID="+strconv.Itoa(in.vmid))
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), r.service(in), append([]string{"one-wg", "--root", string(in.root)}, args...),
		cli.Options{Stdout: &out, Stderr: &errb, Environ: environ, Wire: func(rt *cli.Runtime) { rt.Sysctl = in.f.sc }})
	return code, out.String(), errb.String()
}

func (r *rig) mustRun(in *instance, extra string, args ...string) string {
	r.t.Helper()
	code, out, errs := r.run(in, extra, args...)
	if code != 0 {
		r.t.Fatalf("one-wg %v: exit %d\n%s%s", args, code, out, errs)
	}
	return out + errs
}

func (r *rig) template(id int) map[string]string {
	ut, err := r.gate.UserTemplate(id)
	must(r.t, err)
	return WGAttrs(ut)
}

func serverKey(t *testing.T, in *instance) string {
	t.Helper()
	d, err := in.f.Device("wg0")
	must(t, err)
	return d.PublicKey.String()
}

// Start publishes the configuration to every router VM; a restart and
// another instance reuse it: the same keys, nothing published again.
func TestPublishAndReuse(t *testing.T) {
	r := newRig(t)
	a := r.instance(10)
	r.mustRun(a, "", "start")
	t10, t11 := r.template(10), r.template(11)
	if len(t10) != 7 || len(t11) != 7 {
		t.Fatalf("published attributes: VM 10 %d, VM 11 %d", len(t10), len(t11))
	}
	for k, v := range t10 {
		if t11[k] != v {
			t.Errorf("%s differs between the VMs", k)
		}
	}
	if t10[AttrTimestamp] != strconv.FormatInt(t0.Unix(), 10) {
		t.Errorf("timestamp %s", t10[AttrTimestamp])
	}
	key := serverKey(t, a)
	local, err := ReadLocal(a.root)
	must(t, err)
	if local == nil || local.Attrs[AttrServer] != t10[AttrServer] {
		t.Error("the local copy differs from the published configuration")
	}
	srv, err := decodeServer(t10[AttrServer])
	must(t, err)
	if srv.Key.Public().String() != key || len(srv.Peers) != 5 {
		t.Errorf("published server configuration does not match the device")
	}
	writes := len(r.gate.Writes())

	// Restart, later: same keys, nothing published.
	r.now = t0.Add(time.Hour)
	r.mustRun(a, "", "stop")
	if len(a.f.links) != 0 {
		t.Fatalf("stop left %v", a.f.linkNames())
	}
	r.mustRun(a, "", "start")
	if serverKey(t, a) != key || len(r.gate.Writes()) != writes {
		t.Errorf("restart: key changed or %d writes", len(r.gate.Writes())-writes)
	}
	// A second instance with nothing local takes the stored configuration.
	b := r.instance(11)
	r.mustRun(b, "", "start")
	if serverKey(t, b) != key || len(r.gate.Writes()) != writes {
		t.Errorf("second instance: key changed or %d writes", len(r.gate.Writes())-writes)
	}
	da, _ := a.f.Device("wg0")
	db, _ := b.f.Device("wg0")
	if _, ch := Render(mustSpec(t), Config{}).Changes(da); len(ch) == 0 {
		t.Fatal("comparison is vacuous")
	}
	for i := range da.Peers {
		if da.Peers[i].PublicKey != db.Peers[i].PublicKey || da.Peers[i].PresharedKey != db.Peers[i].PresharedKey {
			t.Errorf("peer %d differs between the instances", i)
		}
	}
	// status: both applied, no drift.
	for _, in := range []*instance{a, b} {
		if code, out, errs := r.run(in, "", "status"); code != 0 {
			t.Errorf("status VM %d: exit %d\n%s%s", in.vmid, code, out, errs)
		}
	}
}

// The newest stored configuration wins across the VMs, and the VMs that
// hold an older one are brought up to date.
func TestNewestAcrossVMs(t *testing.T) {
	r := newRig(t)
	spec := mustSpec(t)
	old, _ := fresh(t, spec, r.keys, "x", t0)
	newer, _ := fresh(t, spec, r.keys, "x", t0.Add(time.Minute))
	c := onegateClient(t, r, 10)
	must(t, c.UpdateVM(context.Background(), 10, newer.Attrs))
	must(t, c.UpdateVM(context.Background(), 11, old.Attrs))
	// Whichever VM starts, in whichever order OneGate lists them.
	for _, vmid := range []int{10, 11} {
		in := r.instance(vmid)
		r.mustRun(in, "", "start")
		if serverKey(t, in) != newer.Config.Key.Public().String() {
			t.Errorf("VM %d took the older configuration", vmid)
		}
	}
	if r.template(11)[AttrServer] != newer.Attrs[AttrServer] || r.template(11)[AttrTimestamp] != newer.Attrs[AttrTimestamp] {
		t.Error("VM 11 was not brought up to date")
	}
}

func onegateClient(t *testing.T, r *rig, vmid int) *onegate.Client {
	u, err := onegate.ParseEndpoint(r.url)
	must(t, err)
	c, err := onegate.New(onegate.Config{Endpoint: u, Token: simToken, VMID: vmid, Attempts: 1}, nil)
	must(t, err)
	return c
}

// Fewer peers erase the stale attributes; more keep the existing keys.
func TestPeerCountOnOneGate(t *testing.T) {
	r := newRig(t)
	a := r.instance(10)
	r.mustRun(a, "", "start")
	before := r.template(10)
	r.now = t0.Add(time.Minute)
	r.mustRun(a, "ONEAPP_VNF_WG_PEERS=3", "start")
	for _, id := range []int{10, 11} {
		tm := r.template(id)
		if _, ok := tm[AttrPeer+"3"]; ok || len(tm) != 5 || tm[AttrPeer+"2"] != before[AttrPeer+"2"] {
			t.Errorf("VM %d after 3 peers: %d attributes", id, len(tm))
		}
		if tm[AttrTimestamp] != strconv.FormatInt(t0.Unix()+60, 10) {
			t.Errorf("VM %d: timestamp %s", id, tm[AttrTimestamp])
		}
	}
	if n := len(a.f.devs["wg0"].Peers); n != 3 {
		t.Errorf("device has %d peers", n)
	}
	r.now = t0.Add(2 * time.Minute)
	r.mustRun(a, "ONEAPP_VNF_WG_PEERS=4", "start")
	tm := r.template(11)
	if len(tm) != 6 || tm[AttrPeer+"0"] != before[AttrPeer+"0"] || tm[AttrPeer+"3"] == before[AttrPeer+"3"] || tm[AttrPeer+"3"] == "" {
		t.Errorf("after 4 peers: %d attributes", len(tm))
	}
	// Another port: every key is new.
	r.mustRun(a, "ONEAPP_VNF_WG_PEERS=4 ONEAPP_VNF_WG_LISTEN_PORT=4500", "start")
	if r.template(10)[AttrPeer+"0"] == before[AttrPeer+"0"] || a.f.devs["wg0"].ListenPort != 4500 {
		t.Error("a new port kept the keys")
	}
}

// OneGate down: with a local copy the router serves it; without one it
// refuses to make keys it could not share (exit 1, nothing applied).
func TestOneGateDown(t *testing.T) {
	r := newRig(t)
	r.gate.Inject(sim.Fault{Status: 503})
	a := r.instance(10)
	code, _, errs := r.run(a, "", "start")
	if code != 1 || !strings.Contains(errs, "not generating keys") || len(a.f.links) != 0 {
		t.Fatalf("start without OneGate nor a local copy: exit %d, links %v\n%s", code, a.f.linkNames(), errs)
	}
	r.gate.ClearFaults()
	r.mustRun(a, "", "start")
	key := serverKey(t, a)
	r.mustRun(a, "", "stop")
	r.gate.Inject(sim.Fault{Status: 503})
	out := r.mustRun(a, "", "start")
	if serverKey(t, a) != key || !strings.Contains(out, "using the local copy") {
		t.Errorf("start from the local copy: key changed\n%s", out)
	}
	// Without OneGate in the context at all, the local copy is the store.
	b := r.instance(12)
	r.mustRun(b, "ONEGATE_ENDPOINT=", "start")
	k1 := serverKey(t, b)
	r.mustRun(b, "ONEGATE_ENDPOINT=", "stop")
	r.mustRun(b, "ONEGATE_ENDPOINT=", "start")
	if serverKey(t, b) != k1 {
		t.Error("restart without OneGate changed the keys")
	}
}

// A VM that is not part of a virtual router keeps its configuration in
// its own template (GET/PUT /vm).
func TestNotAVirtualRouter(t *testing.T) {
	r := newRig(t)
	r.gate.RemoveDocument("vrouter")
	a := r.instance(10)
	r.mustRun(a, "", "start")
	if len(r.template(10)) != 7 || len(r.template(11)) != 0 {
		t.Errorf("templates: VM 10 %d, VM 11 %d", len(r.template(10)), len(r.template(11)))
	}
	for _, w := range r.gate.Writes() {
		if w.VM != 10 {
			t.Errorf("wrote VM %d", w.VM)
		}
	}
}

// A stored configuration with commands is never used, nor run.
func TestStoredCommandsIgnored(t *testing.T) {
	r := newRig(t)
	spec := mustSpec(t)
	good, _ := fresh(t, spec, r.keys, "x", t0)
	evil := withAttrs(Stored{Attrs: good.Attrs}, AttrServer+"="+b64(string(ServerConf(good.Config))+"PostUp = touch "+t.TempDir()+"/pwned\n"),
		AttrTimestamp+"="+strconv.FormatInt(t0.Unix()+10, 10))
	must(t, onegateClient(t, r, 10).UpdateVM(context.Background(), 10, evil.Attrs))
	a := r.instance(10)
	r.now = t0.Add(time.Minute)
	out := r.mustRun(a, "", "start")
	if !strings.Contains(out, "carries commands") || serverKey(t, a) == good.Config.Key.Public().String() {
		t.Errorf("the configuration with commands was used:\n%s", out)
	}
	if ts := r.template(10)[AttrTimestamp]; ts != strconv.FormatInt(t0.Unix()+60, 10) {
		t.Errorf("fresh configuration timestamp %s", ts)
	}
}

func TestPeerVerb(t *testing.T) {
	r := newRig(t)
	a := r.instance(10)
	if code, _, errs := r.run(a, "", "peer", "0"); code != 1 || !strings.Contains(errs, "one-wg start") {
		t.Errorf("peer before start: exit %d %s", code, errs)
	}
	r.mustRun(a, "", "start")
	code, out, errs := r.run(a, "", "peer", "3")
	if code != 0 {
		t.Fatalf("peer 3: exit %d %s", code, errs)
	}
	want, _ := base64.StdEncoding.DecodeString(r.template(11)[AttrPeer+"3"])
	if out != string(want) || strings.Contains(errs, "PrivateKey") {
		t.Errorf("peer 3 prints\n%s\nwant\n%s", out, want)
	}
	// Another instance (nothing local) prints it from OneGate.
	b := r.instance(11)
	if code, out2, _ := r.run(b, "", "peer", "3"); code != 0 || out2 != out {
		t.Errorf("peer 3 on the other instance: exit %d", code)
	}
	for _, bad := range [][]string{{"peer", "5"}, {"peer", "-1"}, {"peer", "x"}, {"peer"}, {"peer", "1", "2"}} {
		if code, _, _ := r.run(a, "", bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
	code, qr, _ := r.run(a, "", "peer", "--qr", "0")
	if code != 0 || !strings.Contains(qr, "\x1b[30;47m") || !strings.Contains(qr, "▀") || strings.Contains(qr, "PrivateKey") {
		t.Errorf("--qr: exit %d\n%s", code, qr)
	}
	if lines := strings.Count(qr, "\n"); lines < 20 || lines > 60 {
		t.Errorf("--qr: %d lines", lines)
	}
}

// Bad input exits 2 before anything is read, published or applied.
func TestBadContextAppliesNothing(t *testing.T) {
	r := newRig(t)
	a := r.instance(10)
	for _, extra := range []string{"ONEAPP_VNF_WG_PEERS=0", "ONEAPP_VNF_WG_LISTEN_PORT=65536", "ETH0_VROUTER_MANAGEMENT=YES",
		"ONEAPP_VNF_WG_SUBNET=169.254.33.0/30", "ONEAPP_VNF_WG_INTERFACE_IN=eth9", "ONEGATE_ENDPOINT=ftp://x"} {
		for _, verb := range []string{"start", "render", "status", "configure"} {
			code, _, errs := r.run(a, extra, verb)
			if code != 2 {
				t.Errorf("%s %s: exit %d\n%s", extra, verb, code, errs)
			}
		}
	}
	if len(r.gate.Requests()) != 0 || len(a.f.links) != 0 || a.root.Exists(StateFile) {
		t.Errorf("something happened: %d requests, links %v", len(r.gate.Requests()), a.f.linkNames())
	}
}

// No verb ever logs key material, at debug level included.
func TestNoKeysInLogs(t *testing.T) {
	r := newRig(t)
	a := r.instance(10)
	var all strings.Builder
	for _, args := range [][]string{{"start"}, {"status"}, {"render"}, {"peer", "0"}, {"stop"}, {"start"}} {
		code, out, errs := r.run(a, "", append([]string{"--debug", "--log-file", "/var/log/one-wg.log"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d %s", args, code, errs)
		}
		all.WriteString(errs)
		if args[0] != "peer" {
			all.WriteString(out)
		}
	}
	logf, err := os.ReadFile(a.root.Path("/var/log/one-wg.log"))
	must(t, err)
	all.Write(logf)
	c := Choose([]Stored{{Source: "VM 10", Attrs: r.template(10)}})
	secrets := []string{c.Server.Key.reveal()}
	for _, p := range c.Server.Peers {
		secrets = append(secrets, p.PSK.reveal())
	}
	for i := 0; i < 5; i++ {
		pc, err := decodeClient(r.template(10)[AttrPeer+strconv.Itoa(i)])
		must(t, err)
		secrets = append(secrets, pc.Key.reveal())
	}
	for _, s := range secrets {
		if strings.Contains(all.String(), s) {
			t.Fatalf("a key is in the output or logs")
		}
	}
	if !strings.Contains(all.String(), "applied") {
		t.Error("no log captured: the test is vacuous")
	}
}

func TestStatusDrift(t *testing.T) {
	r := newRig(t)
	a := r.instance(10)
	if code, _, _ := r.run(a, "", "status"); code != 3 {
		t.Errorf("status before start: exit %d", code)
	}
	r.mustRun(a, "", "start")
	for pid := range a.f.procs {
		a.f.crash(pid)
	}
	code, out, _ := r.run(a, "", "status")
	if code != 3 || !strings.Contains(out, "does not exist") {
		t.Errorf("status after wireguard-go died: exit %d\n%s", code, out)
	}
	r.mustRun(a, "", "start")
	if code, out, _ := r.run(a, "", "status"); code != 0 {
		t.Errorf("status after restart: %d\n%s", code, out)
	}
	// Disabled with the device still there is drift too.
	if code, _, _ := r.run(a, "ONEAPP_VNF_WG_ENABLED=NO", "status"); code != 3 {
		t.Errorf("disabled but present: exit %d", code)
	}
	r.mustRun(a, "ONEAPP_VNF_WG_ENABLED=NO", "start")
	if len(a.f.links) != 0 {
		t.Errorf("disabled start left %v", a.f.linkNames())
	}
}

// render with a stored configuration (the local copy, no OneGate): public
// keys in full, secrets hidden, the stored timestamp.
func TestRenderStored(t *testing.T) {
	spec := mustSpec(t, "ONEAPP_VNF_WG_PEERS=2")
	r, _ := fresh(t, spec, &seqKeys{}, "x", t0)
	root := fsroot.Root(t.TempDir())
	_, err := WriteLocal(root, r.Attrs)
	must(t, err)
	var out, errb bytes.Buffer
	environ := append(strings.Fields(guideEnv), "ONEAPP_VNF_WG_PEERS=2")
	code := cli.Run(context.Background(), Service{Keys: &seqKeys{n: 100}}, []string{"one-wg", "--root", string(root), "render"},
		cli.Options{Stdout: &out, Stderr: &errb, Environ: environ})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	golden.Check(t, "stored", out.Bytes())
	if !strings.Contains(out.String(), r.Config.Key.Public().String()) {
		t.Error("the stored server key is not shown")
	}
}
