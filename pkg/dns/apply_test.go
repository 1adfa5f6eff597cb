package dns

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/openrc"
)

// fakeHost is the system one-dns drives: the service manager, the checker
// (rejects files containing reject) and the probe (fails while down is set).
type fakeHost struct {
	rc      *openrc.Fake
	checked []string
	reject  string
	probes  int
	down    error
}

func (h *fakeHost) service() Service {
	return Service{
		Services: func(fsroot.Root) openrc.Services { return h.rc },
		Check: func(_ context.Context, path string) error {
			h.checked = append(h.checked, path)
			data, err := readFile(path)
			if err != nil {
				return err
			}
			if h.reject != "" && strings.Contains(string(data), h.reject) {
				return errors.New("unbound-checkconf: syntax error")
			}
			return nil
		},
		Probe: func(ctx context.Context, tcp bool) error {
			h.probes++
			if h.down != nil {
				return h.down
			}
			if st, _ := h.rc.Status(ctx, UnboundService); st != openrc.Started {
				return errors.New("connection refused")
			}
			return nil
		},
	}
}

func newHost() *fakeHost {
	rc := openrc.NewFake()
	// Someone else's service, which one-dns must never touch.
	rc.States["haproxy"] = openrc.Started
	return &fakeHost{rc: rc}
}

const ctxBase = "ETH0_IP=203.0.113.2 ETH0_MASK=255.255.255.0 ETH1_IP=10.0.0.1 ETH1_MASK=255.255.255.0 ONEAPP_VNF_DNS_ENABLED=YES ONEAPP_VNF_DNS_INTERFACES=eth1"

func rtFor(t *testing.T, root fsroot.Root, pairs string) *cli.Runtime {
	return &cli.Runtime{Env: onecontext.FromPairs(strings.Fields(pairs)...), Root: root,
		Log: slog.New(slog.DiscardHandler), Stdout: &bytes.Buffer{}}
}

// started is a host where one-dns started with ctxBase, calls forgotten.
func started(t *testing.T) (*fakeHost, Service, fsroot.Root) {
	t.Helper()
	h := newHost()
	svc := h.service()
	root := fsroot.Root(t.TempDir())
	if err := svc.Start(context.Background(), rtFor(t, root, ctxBase)); err != nil {
		t.Fatal(err)
	}
	h.calls()
	return h, svc, root
}

// wantCalls compares the service-manager calls since the last look.
func (h *fakeHost) wantCalls(t *testing.T, what string, want ...string) {
	t.Helper()
	if d := cmp.Diff(want, h.calls()); d != "" {
		t.Fatalf("%s: calls (-want +got):\n%s", what, d)
	}
}

func (h *fakeHost) calls() []string {
	c := h.rc.Calls
	h.rc.Reset()
	return c
}

func TestStartConverges(t *testing.T) {
	ctx := context.Background()
	h := newHost()
	svc := h.service()
	root := fsroot.Root(t.TempDir())
	rt := rtFor(t, root, ctxBase)

	if err := svc.Start(ctx, rt); err != nil {
		t.Fatal(err)
	}
	h.wantCalls(t, "first start", "unbound start")
	conf, err := root.ReadFile(ConfigFile)
	if err != nil || !bytes.Contains(conf, []byte("interface: 10.0.0.1\n")) {
		t.Fatalf("config: %v\n%s", err, conf)
	}
	if len(h.checked) != 1 || filepath.Dir(h.checked[0]) != root.Path("/etc/unbound") {
		t.Fatalf("checked %v: the candidate must be judged next to the live file", h.checked)
	}
	if !root.Exists("/var/log/unbound") {
		t.Fatal("log directory not created (unbound-checkconf needs it)")
	}

	// Unchanged: nothing is written, checked, reloaded or probed.
	h.checked, h.probes = nil, 0
	if err := svc.Start(ctx, rt); err != nil {
		t.Fatal(err)
	}
	if c := h.calls(); len(c) != 0 || len(h.checked) != 0 || h.probes != 0 {
		t.Fatalf("unchanged start: calls %v, checks %v, probes %d", c, h.checked, h.probes)
	}
	if rep, err := svc.Status(ctx, rt); err != nil || len(rep.Drift) != 0 || !rep.Applied {
		t.Fatalf("status: %+v %v", rep, err)
	}

	// A reloadable change (client networks): reload, no restart.
	rt = rtFor(t, root, ctxBase+" ONEAPP_VNF_DNS_ALLOWED_NETWORKS=10.0.0.0/16")
	if err := svc.Start(ctx, rt); err != nil {
		t.Fatal(err)
	}
	h.wantCalls(t, "new networks", "unbound reload")

	// A listening change: unbound binds once, so restart.
	rt = rtFor(t, root, ctxBase+" ONEAPP_VNF_DNS_INTERFACES=eth0,eth1")
	if err := svc.Start(ctx, rt); err != nil {
		t.Fatal(err)
	}
	h.wantCalls(t, "new interfaces", "unbound restart")

	// configure rewrites the file without touching unbound; status sees
	// that unbound runs with the older file; reload (start) applies it.
	rt = rtFor(t, root, ctxBase+" ONEAPP_VNF_DNS_INTERFACES=eth0,eth1 ONEAPP_VNF_DNS_MAX_CACHE_TTL=60")
	if err := svc.Configure(ctx, rt); err != nil {
		t.Fatal(err)
	}
	if c := h.calls(); len(c) != 0 {
		t.Fatalf("configure ran %v", c)
	}
	rep, _ := svc.Status(ctx, rt)
	if d := cmp.Diff([]string{"unbound runs with an older configuration (rc-service one-dns reload)"}, rep.Drift); d != "" {
		t.Fatalf("status after configure (-want +got):\n%s", d)
	}
	if err := svc.Start(ctx, rt); err != nil {
		t.Fatal(err)
	}
	h.wantCalls(t, "start after configure", "unbound reload")

	// Stop twice, then status reports it.
	for i := 0; i < 2; i++ {
		if err := svc.Stop(ctx, rt); err != nil {
			t.Fatal(err)
		}
	}
	h.wantCalls(t, "stop twice", "unbound stop")
	rep, _ = svc.Status(ctx, rt)
	if d := cmp.Diff([]string{"unbound is stopped"}, rep.Drift); d != "" {
		t.Fatalf("status after stop (-want +got):\n%s", d)
	}
	if h.rc.States["haproxy"] != openrc.Started {
		t.Fatal("another service was touched")
	}
}

// The file is judged before it replaces the live one: a rejected file
// leaves the live file and unbound as they were.
func TestRejectedConfigChangesNothing(t *testing.T) {
	ctx := context.Background()
	h, svc, root := started(t)
	before, _ := root.ReadFile(ConfigFile)
	h.reject = "cache-max-ttl: 60\n"
	err := svc.Start(ctx, rtFor(t, root, ctxBase+" ONEAPP_VNF_DNS_MAX_CACHE_TTL=60"))
	if err == nil || cli.ExitCode(err) != 1 || !strings.Contains(err.Error(), "live file is unchanged") {
		t.Fatalf("rejected file: exit %d: %v", cli.ExitCode(err), err)
	}
	after, _ := root.ReadFile(ConfigFile)
	if !bytes.Equal(before, after) {
		t.Fatal("the live file changed")
	}
	if c := h.calls(); len(c) != 0 {
		t.Fatalf("unbound was driven: %v", c)
	}
}

// Invalid context: exit 2 naming the variable; nothing written or run.
func TestBadInputChangesNothing(t *testing.T) {
	for _, bad := range []string{
		"ONEAPP_VNF_DNS_NAMESERVERS=1.1.1.1:53",
		"ONEAPP_VNF_DNS_ALLOWED_NETWORKS=10.0.0.0",
		"ONEAPP_VNF_DNS_UPSTREAM_TIMEOUT=0",
		"ONEAPP_VNF_DNS_MAX_CACHE_TTL=-1",
		"ONEAPP_VNF_DNS_INTERFACES=eth1;eth7",
		"ONEAPP_VNF_DNS_ENABLED=maybe",
	} {
		t.Run(bad, func(t *testing.T) {
			ctx := context.Background()
			h := newHost()
			svc := h.service()
			root := fsroot.Root(t.TempDir())
			rt := rtFor(t, root, ctxBase+" "+bad)
			for verb, f := range map[string]func() error{
				"start":     func() error { return svc.Start(ctx, rt) },
				"configure": func() error { return svc.Configure(ctx, rt) },
			} {
				err := f()
				name, _, _ := strings.Cut(bad, "=")
				if cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), name) {
					t.Fatalf("%s: exit %d: %v", verb, cli.ExitCode(err), err)
				}
			}
			if root.Exists(ConfigFile) || len(h.rc.Calls) != 0 || len(h.checked) != 0 {
				t.Fatalf("bad input changed something: calls %v, checks %v", h.rc.Calls, h.checked)
			}
		})
	}
}

// Stop needs no valid context, and is fine where unbound is not installed.
func TestStopLenient(t *testing.T) {
	ctx := context.Background()
	h := &fakeHost{rc: openrc.NewFake("one-dns")}
	root := fsroot.Root(t.TempDir())
	if err := h.service().Stop(ctx, rtFor(t, root, "ETH0_IP=bogus ONEAPP_VNF_DNS_INTERFACES=eth9")); err != nil {
		t.Fatal(err)
	}
	if len(h.rc.Calls) != 0 {
		t.Fatalf("calls %v", h.rc.Calls)
	}
	// Start without unbound's script says what to do.
	err := h.service().Start(ctx, rtFor(t, root, ctxBase))
	if err == nil || !strings.Contains(err.Error(), "one-dns install") {
		t.Fatalf("start without the unbound script: %v", err)
	}
}

// Disabled: start stops unbound and writes nothing.
func TestDisabledStopsUnbound(t *testing.T) {
	ctx := context.Background()
	h, svc, root := started(t)
	rt := rtFor(t, root, strings.Replace(ctxBase, "ENABLED=YES", "ENABLED=NO", 1))
	if err := svc.Start(ctx, rt); err != nil {
		t.Fatal(err)
	}
	h.wantCalls(t, "disabled", "unbound stop")
	rep, err := svc.Status(ctx, rt)
	if err != nil || len(rep.Drift) != 0 || rep.Enabled {
		t.Fatalf("status: %+v %v", rep, err)
	}
}

// unbound that does not answer fails start (exit 1), and the next start
// restarts it rather than trusting it.
func TestNotAnsweringIsRetried(t *testing.T) {
	ctx := context.Background()
	h := newHost()
	h.down = errors.New("connection refused")
	svc := h.service()
	svc.Probe = func(ctx context.Context, tcp bool) error { return h.down }
	root := fsroot.Root(t.TempDir())
	rt := rtFor(t, root, ctxBase)
	u := svc.unbound(rt)
	u.ReadyTimeout = 200 * time.Millisecond
	_, err := u.Apply(ctx, Render(mustSpec(t, rt)), false)
	if err == nil || cli.ExitCode(err) != 1 || !strings.Contains(err.Error(), "127.0.0.1:53") {
		t.Fatalf("not answering: %v", err)
	}
	h.calls()
	h.down = nil
	if err := svc.Start(ctx, rt); err != nil {
		t.Fatal(err)
	}
	h.wantCalls(t, "answering again", "unbound restart")
}

// A crashed unbound (supervise-daemon gave up) is restarted even when its
// configuration did not change.
func TestCrashedIsRestarted(t *testing.T) {
	ctx := context.Background()
	h, svc, root := started(t)
	rt := rtFor(t, root, ctxBase)
	h.rc.States[UnboundService] = openrc.Crashed
	if err := svc.Start(ctx, rt); err != nil {
		t.Fatal(err)
	}
	h.wantCalls(t, "crashed", "unbound restart")
}

// The distribution's root hints are used where they exist, and only when
// the root servers are.
func TestRootHints(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	if got := DetectRootHints(root); got != "" {
		t.Fatalf("empty root: %q", got)
	}
	if _, err := root.WriteFile(RootHintsFiles[1], []byte("; hints\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := DetectRootHints(root); got != RootHintsFiles[1] {
		t.Fatalf("Alpine's file: %q", got)
	}
	if _, err := root.WriteFile(RootHintsFiles[0], []byte("; hints\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := DetectRootHints(root); got != RootHintsFiles[0] {
		t.Fatalf("Debian's file first: %q", got)
	}
	for pairs, want := range map[string]bool{
		ctxBase: true,
		ctxBase + " ONEAPP_VNF_DNS_NAMESERVERS=192.0.2.1":                                   true,
		ctxBase + " ONEAPP_VNF_DNS_NAMESERVERS=192.0.2.1 ONEAPP_VNF_DNS_USE_ROOTSERVERS=NO": false,
		ctxBase + " ONEAPP_VNF_DNS_USE_ROOTSERVERS=NO ETH0_DNS=192.0.2.1":                   false,
	} {
		rt := rtFor(t, root, pairs)
		sp, err := spec(rt)
		if err != nil {
			t.Fatal(err)
		}
		conf := Render(sp).Config
		if got := bytes.Contains(conf, []byte(`root-hints: "`+RootHintsFiles[0]+`"`)); got != want {
			t.Errorf("%s: root-hints rendered %v, want %v", pairs, got, want)
		}
		if want && hostHasHints() {
			checkConf(t, conf)
		}
	}
}

func mustSpec(t *testing.T, rt *cli.Runtime) Spec {
	t.Helper()
	sp, err := spec(rt)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// NeedsRestart: only settings unbound reads at start force a restart.
func TestNeedsRestart(t *testing.T) {
	a := []byte("server:\n    interface: 10.0.0.1\n    cache-max-ttl: 60\n")
	for conf, want := range map[string]bool{
		"server:\n    interface: 10.0.0.1\n    cache-max-ttl: 30\n":                          false,
		"server:\n    interface: 10.0.0.1\n    interface: 10.0.0.2\n    cache-max-ttl: 60\n": true,
		"server:\n    interface: 10.0.0.1@5353\n    cache-max-ttl: 60\n":                     true,
		"server:\n    interface: 10.0.0.1\n    do-udp: no\n    cache-max-ttl: 60\n":          true,
	} {
		if got := NeedsRestart(a, []byte(conf)); got != want {
			t.Errorf("%q: %v, want %v", conf, got, want)
		}
	}
}

func readFile(p string) ([]byte, error) { return fsroot.Root("/").ReadFile(p) }

// hostHasHints: the root hints the test renders exist on this machine too,
// so unbound-checkconf can judge the file.
func hostHasHints() bool { return fsroot.Root("/").Exists(RootHintsFiles[0]) }
