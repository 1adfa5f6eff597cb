package haproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/lb"
	"github.com/hypercx/vrouter/pkg/lb/lbtest"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/onegate"
	"github.com/hypercx/vrouter/pkg/openrc"
)

// fakeAdmin is haproxy's admin socket: a worker PID that changes with every
// (re)start the fake RC makes, and a server state.
type fakeAdmin struct {
	mu    sync.Mutex
	pid   int
	up    bool
	state string
	cmds  []string
}

func (a *fakeAdmin) Command(_ context.Context, cmd string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cmds = append(a.cmds, cmd)
	if !a.up {
		return "", errors.New("connect: no such file or directory")
	}
	switch cmd {
	case "show info":
		return fmt.Sprintf("Name: HAProxy\nPid: %d\n", a.pid), nil
	case "show servers state":
		return a.state, nil
	}
	return "", errors.New("unknown command")
}

// rc wraps openrc.Fake so that starting, restarting and reloading haproxy
// gives it a new worker.
type rc struct {
	*openrc.Fake
	admin *fakeAdmin
}

func (r rc) Run(ctx context.Context, name, verb string, flags ...string) error {
	if err := r.Fake.Run(ctx, name, verb, flags...); err != nil {
		return err
	}
	if name == HAProxyService {
		r.admin.mu.Lock()
		switch verb {
		case "start", "restart", "reload":
			r.admin.pid++
			r.admin.up = true
		case "stop":
			r.admin.up = false
		}
		r.admin.mu.Unlock()
	}
	return nil
}

type checker struct {
	mu     sync.Mutex
	reject string // a substring of servers.cfg that fails the check
	calls  int
}

func (c *checker) check(_ context.Context, main, servers string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	s, err := os.ReadFile(servers)
	if err != nil {
		return err
	}
	if _, err := os.ReadFile(main); err != nil {
		return err
	}
	if c.reject != "" && bytes.Contains(s, []byte(c.reject)) {
		return fmt.Errorf("[ALERT] parsing [%s:12]: bad", servers)
	}
	return nil
}

func newDriver(t *testing.T) (HAProxy, rc, *checker) {
	t.Helper()
	admin := &fakeAdmin{pid: 100, state: "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state\n3 lb0_80 1 lb0_172.20.0.104_8080 172.20.0.104 0 0 1 1\n"}
	r := rc{Fake: openrc.NewFake(HAProxyService), admin: admin}
	c := &checker{}
	return HAProxy{Root: fsroot.Root(t.TempDir()), RC: r, Check: c.check, Admin: admin, ReadyTimeout: time.Second}, r, c
}

// master is haproxy's master CLI: "reload" starts a new worker.
type master struct{ admin *fakeAdmin }

func (m master) Command(_ context.Context, cmd string) (string, error) {
	m.admin.mu.Lock()
	defer m.admin.mu.Unlock()
	if !m.admin.up || cmd != "reload" {
		return "", errors.New("no master")
	}
	m.admin.pid++
	return "", nil
}

// Reloads go through the master CLI when it answers: no rc-service call.
func TestReloadThroughTheMaster(t *testing.T) {
	h, r, _ := newDriver(t)
	h.Master = master{r.admin}
	ctx := context.Background()
	if _, err := h.Apply(ctx, desired("# one\n")); err != nil {
		t.Fatal(err)
	}
	r.Reset()
	if res, err := h.Apply(ctx, desired("# two\n")); err != nil || res.Action != ActionReload {
		t.Fatalf("%+v %v", res, err)
	}
	if res, err := h.Apply(ctx, desired("# two\n")); err != nil || res.Action != ActionNone {
		t.Fatalf("%+v %v", res, err)
	}
	if len(r.Calls) != 0 {
		t.Fatalf("rc-service calls: %v", r.Calls)
	}
}

func desired(servers string) Desired { return Desired{Main: MainConfig(), Servers: []byte(servers)} }

func TestApplyStartsReloadsAndLeavesAlone(t *testing.T) {
	h, r, c := newDriver(t)
	ctx := context.Background()
	canary := "/etc/haproxy/errors/503.http"
	if _, err := h.Root.WriteFile(canary, []byte("someone else's"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := h.Apply(ctx, desired("# one\n"))
	if err != nil || res.Action != ActionStart || !res.FileChanged {
		t.Fatalf("first apply: %+v %v", res, err)
	}
	res, err = h.Apply(ctx, desired("# one\n"))
	if err != nil || res.Action != ActionNone || res.FileChanged || c.calls != 1 {
		t.Fatalf("unchanged: %+v %v (checks %d)", res, err, c.calls)
	}
	res, err = h.Apply(ctx, desired("# two\n"))
	if err != nil || res.Action != ActionReload {
		t.Fatalf("changed: %+v %v", res, err)
	}
	if st, _ := h.Root.ReadFile(StateFile); !strings.Contains(string(st), "lb0_172.20.0.104_8080") {
		t.Fatalf("server state not saved before the reload: %q", st)
	}
	if got := strings.Join(r.Calls, ","); got != "haproxy start,haproxy reload" {
		t.Fatalf("calls: %s", got)
	}
	// A configuration haproxy rejects changes nothing.
	c.reject = "three"
	if _, err := h.Apply(ctx, desired("# three\n")); err == nil || !strings.Contains(err.Error(), ServersFile+":12") {
		t.Fatalf("rejected: %v", err)
	}
	if b, _ := h.Root.ReadFile(ServersFile); string(b) != "# two\n" {
		t.Fatalf("live file replaced by a rejected one: %q", b)
	}
	// haproxy crashed (its socket does not answer): restarted.
	r.States[HAProxyService] = openrc.Crashed
	r.admin.up = false
	c.reject = ""
	if res, err := h.Apply(ctx, desired("# two\n")); err != nil || res.Action != ActionRestart {
		t.Fatalf("crashed: %+v %v", res, err)
	}
	// Stopped by someone else after it ran our configuration: left stopped.
	_ = r.Run(ctx, HAProxyService, "stop")
	r.Reset()
	if _, err := h.Apply(ctx, desired("# two\n")); !errors.Is(err, ErrStoppedByHand) || len(r.Calls) != 0 {
		t.Fatalf("stopped by hand: %v %v", err, r.Calls)
	}
	// Stop twice, then on a system where nothing runs.
	for i := 0; i < 2; i++ {
		if err := h.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if r.States[HAProxyService] != openrc.Stopped || strings.Count(strings.Join(r.Calls, ","), "haproxy stop") != 0 {
		t.Fatalf("stop: %v %v", r.States, r.Calls)
	}
	if b, _ := h.Root.ReadFile(ServersFile); !bytes.Equal(b, EmptyServers()) {
		t.Fatalf("stop leaves servers.cfg: %q", b)
	}
	if b, _ := h.Root.ReadFile(canary); string(b) != "someone else's" {
		t.Fatal("a file of someone else changed")
	}
	empty, _, _ := newDriver(t)
	if err := empty.Stop(ctx); err != nil {
		t.Fatalf("stop on an empty system: %v", err)
	}
	if empty.Root.Exists(ServersFile) {
		t.Fatal("stop created servers.cfg where haproxy was never configured")
	}
}

func TestApplyWithoutHAProxyInstalled(t *testing.T) {
	h, _, _ := newDriver(t)
	h.RC = openrc.NewFake("one-haproxy")
	if _, err := h.Apply(context.Background(), desired("#\n")); err == nil || !strings.Contains(err.Error(), "one-haproxy install") {
		t.Fatalf("%v", err)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestApplyWaitsForTheNewWorker(t *testing.T) {
	h, r, _ := newDriver(t)
	ctx := context.Background()
	if _, err := h.Apply(ctx, desired("# one\n")); err != nil {
		t.Fatal(err)
	}
	// A reload that never brings a new worker is a failure, and the next
	// apply tries again (the applied configuration was forgotten).
	stuck := rc{Fake: r.Fake, admin: &fakeAdmin{}}
	h.RC = stuck
	if _, err := h.Apply(ctx, desired("# two\n")); err == nil || !strings.Contains(err.Error(), "still answers") {
		t.Fatalf("%v", err)
	}
	h.RC = r
	if res, err := h.Apply(ctx, desired("# two\n")); err != nil || res.Action != ActionReload {
		t.Fatalf("retry: %+v %v", res, err)
	}
}

func TestServerStates(t *testing.T) {
	out := "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n" +
		"3 lb0_80 1 lb0_a_80 10.0.0.1 2 0 1 1\n3 lb0_80 2 lb0_b_80 10.0.0.2 0 0 1 1\n3 lb0_80 3 lb0_c_80 - 0 32 1 1\n"
	got := strings.Join(ServerStates(out), ",")
	if got != "lb0_80/lb0_a_80 UP,lb0_80/lb0_b_80 DOWN,lb0_80/lb0_c_80 MAINT" {
		t.Fatal(got)
	}
}

// gate is a OneGate whose router networks hold one backend VM whose
// attributes a test can change.
type gate struct {
	mu    sync.Mutex
	attrs map[string]string
}

func (g *gate) set(attrs map[string]string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.attrs = attrs
}

func (g *gate) Networks(context.Context) ([]onegate.VNet, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return []onegate.VNet{{ID: 1, ARs: []onegate.AR{{Leases: []onegate.Lease{{VM: 50, VNet: onegate.None, Backend: true, OneGate: g.attrs}}}}}}, nil
}

func (g *gate) ServiceVMs(context.Context) ([]onegate.VM, error) {
	return nil, errors.New("not in a service")
}

const daemonContext = `export ETH0_IP="10.0.1.1"
export ETH0_MASK="255.255.255.0"
export ETH1_IP="172.20.0.1"
export ETH1_MASK="255.255.255.0"
export VROUTER_ID="3"
export ONEGATE_ENDPOINT="http://onegate.invalid:5030"
export TOKENTXT="t"
export ONEAPP_VNF_HAPROXY_ENABLED="YES"
export ONEAPP_VNF_HAPROXY_ONEGATE_ENABLED="YES"
export ONEAPP_VNF_HAPROXY_REFRESH_RATE="1"
export ONEAPP_VNF_HAPROXY_LB0_IP="<ETH0_EP0>"
export ONEAPP_VNF_HAPROXY_LB0_PORT="80"
export ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST="172.20.0.104"
export ONEAPP_VNF_HAPROXY_LB0_SERVER0_PORT="8080"
`

// The daemon over fakes: it starts haproxy with the static and dynamic
// backends, follows OneGate (a backend appears, then goes away), keeps the
// LBs through a OneGate outage, re-reads the context on reload, and a bad
// context keeps the running one.
func TestDaemon(t *testing.T) {
	h, r, _ := newDriver(t)
	root := h.Root
	envFile := root.Path("/run/one-context/one_env")
	write := func(s string) {
		if _, err := root.WriteFile("/run/one-context/one_env", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(daemonContext)
	g := &gate{}
	applied := lbtest.NewApplies()
	svc := Service{
		Services:  func(fsroot.Root) openrc.Services { return r },
		Check:     (&checker{}).check,
		Admin:     r.admin,
		Client:    func(lb.Config) (lb.OneGate, error) { return g, nil },
		OnApplied: applied.Record,
	}
	env, _, err := onecontext.Load(envFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	load := func() (onecontext.Env, []string, error) { return onecontext.Load(envFile, nil) }
	setLoad := func(f func() (onecontext.Env, []string, error)) { mu.Lock(); load = f; mu.Unlock() }
	rt := &cli.Runtime{Env: env, Root: root, Log: slog.New(slog.DiscardHandler), Stdout: &bytes.Buffer{},
		LoadEnv: func() (onecontext.Env, []string, error) { mu.Lock(); defer mu.Unlock(); return load() }}
	other := *rt
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Start(ctx, rt) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor := func(want string) { t.Helper(); applied.WaitFor(t, want) }
	waitFor("172.20.0.104:8080")
	if st, _ := r.Status(ctx, HAProxyService); st != openrc.Started {
		t.Fatal("haproxy not started")
	}
	g.set(map[string]string{"ONEGATE_HAPROXY_LB0_IP": "<ETH0_EP0>", "ONEGATE_HAPROXY_LB0_PORT": "80",
		"ONEGATE_HAPROXY_LB0_SERVER_HOST": "172.20.0.150", "ONEGATE_HAPROXY_LB0_SERVER_PORT": "8080"})
	waitFor("172.20.0.104:8080 172.20.0.150:8080")
	if b, _ := root.ReadFile(ServersFile); !strings.Contains(string(b), "server lb0_172.20.0.150_8080 172.20.0.150:8080") {
		t.Fatalf("servers.cfg:\n%s", b)
	}
	g.set(nil)
	waitFor("172.20.0.104:8080")
	// A second daemon is refused; configure leaves the daemon's file.
	if err := svc.Start(context.Background(), &other); err == nil || !strings.Contains(err.Error(), "another one-haproxy") {
		t.Fatalf("second daemon: %v", err)
	}
	before, _ := root.ReadFile(ServersFile)
	if err := svc.Configure(context.Background(), &other); err != nil {
		t.Fatal(err)
	}
	if after, _ := root.ReadFile(ServersFile); !bytes.Equal(before, after) {
		t.Fatal("configure emptied servers.cfg under a running daemon")
	}
	// A bad context is refused and the running LBs stay.
	setLoad(func() (onecontext.Env, []string, error) {
		return onecontext.FromPairs("ONEAPP_VNF_HAPROXY_ENABLED=YES", "ONEAPP_VNF_HAPROXY_LB0_PORT=80"), nil, nil
	})
	svc.reload(t)
	waitFor("172.20.0.104:8080")
	// Disabled: haproxy is stopped.
	setLoad(func() (onecontext.Env, []string, error) { return onecontext.FromPairs(), nil, nil })
	svc.reload(t)
	waitFor("")
	if st, _ := r.Status(ctx, HAProxyService); st != openrc.Stopped {
		t.Fatalf("disabled: haproxy is %s", st)
	}
}

// reload sends SIGHUP to the test process, which the running daemon has
// registered for.
func (Service) reload(t *testing.T) {
	t.Helper()
	p, _ := os.FindProcess(os.Getpid())
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}
