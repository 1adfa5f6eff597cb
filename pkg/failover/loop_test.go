package failover

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hypercx/vrouter/pkg/keepalived"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/openrc"
)

// fakeRC is the stateful OpenRC fake plus crashes, failures and a call
// log that is safe to read while the daemon runs.
type fakeRC struct {
	*openrc.Fake
	mu      sync.Mutex
	crashed map[string]bool
	fail    map[string]error
	log     []string
	// held: a start of that service blocks until the channel is closed.
	held map[string]chan struct{}
	// starting: services whose start was killed and not stopped since.
	starting []string
}

// hold makes the next starts of svc block until the returned function is
// called (a start script that hangs).
func (f *fakeRC) hold(svc string) (release func()) {
	c := make(chan struct{})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held == nil {
		f.held = map[string]chan struct{}{}
	}
	f.held[svc] = c
	var once sync.Once
	return func() { once.Do(func() { close(c) }) }
}

func newFakeRC(installed ...string) *fakeRC {
	return &fakeRC{Fake: openrc.NewFake(installed...), crashed: map[string]bool{}, fail: map[string]error{}}
}

func (f *fakeRC) failStart(svc string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, svc)
	} else {
		f.fail[svc] = err
	}
}

func (f *fakeRC) crash(svc string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crashed[svc] = true
}

func (f *fakeRC) Status(ctx context.Context, name string) (openrc.State, error) {
	f.mu.Lock()
	c, starting := f.crashed[name], slices.Contains(f.starting, name)
	f.mu.Unlock()
	if c {
		return openrc.Crashed, nil
	}
	if starting {
		return openrc.Starting, nil
	}
	return f.Fake.Status(ctx, name)
}

func (f *fakeRC) Run(ctx context.Context, name, verb string, flags ...string) error {
	f.mu.Lock()
	delete(f.crashed, name)
	f.starting = slices.DeleteFunc(f.starting, func(s string) bool { return s == name })
	f.log = append(f.log, name+" "+verb)
	err := f.fail[name]
	held := f.held[name]
	f.mu.Unlock()
	if held != nil && (verb == "start" || verb == "restart") {
		select {
		case <-held:
		case <-ctx.Done():
			// Killed mid-start, like the real seam: OpenRC still
			// says "starting".
			f.mu.Lock()
			f.log = append(f.log, name+" "+verb+" killed")
			f.starting = append(f.starting, name)
			f.mu.Unlock()
			return ctx.Err()
		}
	}
	if err != nil && (verb == "start" || verb == "restart") {
		_ = f.Fake.Run(ctx, name, "stop")
		return err
	}
	return f.Fake.Run(ctx, name, verb, flags...)
}

func (f *fakeRC) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

func (f *fakeRC) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = nil
}

func (f *fakeRC) state(svc string) openrc.State {
	st, _ := f.Status(context.Background(), svc)
	return st
}

// fakeObserver returns a settable observation.
type fakeObserver struct {
	mu sync.Mutex
	o  Observation
}

func (f *fakeObserver) set(o Observation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.o = o
}

func (f *fakeObserver) Observe([]keepalived.VRRPInstance) Observation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.o
}

type reloadable map[string]bool

func (r reloadable) CanReload(s string) bool { return r[s] }

const haEnv = "VROUTER_KEEPALIVED_ID=5 ETH0_IP=203.0.113.2 ETH0_VROUTER_IP=203.0.113.1 ETH1_IP=10.0.0.2 ETH1_VROUTER_IP=10.0.0.1 " +
	"ONEAPP_VNF_KEEPALIVED_ETH1_VRID=6 ONEAPP_VNF_NAT4_ENABLED=YES ONEAPP_VNF_DNS_ENABLED=NO"

func mustSpec(t *testing.T, env string) Spec {
	t.Helper()
	s, err := FromContext(onecontext.FromPairs(strings.Fields(env)...))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type harness struct {
	t      *testing.T
	rc     *fakeRC
	obs    *fakeObserver
	fifo   string
	reload chan struct{}
	mu     sync.Mutex
	trs    []string
	spec   Spec
	cancel func()
	done   chan error
}

func (h *harness) transitions() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.trs)
}

func (h *harness) write(lines ...string) {
	h.t.Helper()
	if err := h.tryWrite(lines...); err != nil {
		h.t.Fatal(err)
	}
}

// tryWrite writes like keepalived; it fails (ENXIO) while nobody holds the
// FIFO open.
func (h *harness) tryWrite(lines ...string) error {
	f, err := os.OpenFile(h.fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := fmt.Fprintln(f, l); err != nil {
			return err
		}
	}
	return nil
}

func startDaemon(t *testing.T, spec Spec, rc *fakeRC, o Observation, opts ...func(*Daemon)) *harness {
	h := &harness{t: t, rc: rc, obs: &fakeObserver{o: o}, fifo: filepath.Join(t.TempDir(), "run", "keepalived", "fifo"),
		reload: make(chan struct{}, 1), spec: spec, done: make(chan error, 1)}
	d := &Daemon{
		Services: rc, Observer: h.obs, Scripts: reloadable{"one-nat4": true, "one-router4": true},
		FIFO: h.fifo, Log: slog.New(slog.DiscardHandler), Reload: h.reload,
		LoadSpec: func() (Spec, error) { h.mu.Lock(); defer h.mu.Unlock(); return h.spec, nil },
		Tick:     20 * time.Millisecond, Poll: 2 * time.Millisecond, Settle: 10 * time.Millisecond, CheckEvery: 2,
		OnTransition: func(ev Event, tr Transition) {
			h.mu.Lock()
			defer h.mu.Unlock()
			if tr.Action != Nothing {
				h.trs = append(h.trs, string(tr.Action)+" "+tr.Service)
			}
		},
	}
	for _, opt := range opts {
		opt(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- d.Run(ctx, spec) }()
	t.Cleanup(func() { cancel(); <-h.done })
	return h
}

// The whole life of a router, against the stateful OpenRC fake and a real
// FIFO that does not exist when the daemon starts.
func TestDaemon(t *testing.T) {
	rc := newFakeRC("one-router4", "one-nat4", "one-dns", "one-lvs")
	_ = rc.Run(context.Background(), "one-dns", "start") // left over from before: disabled
	rc.reset()
	spec := mustSpec(t, haEnv)
	h := startDaemon(t, spec, rc, obs(10, "ETH0=none", "ETH1=none"))

	// The FIFO is created by the daemon.
	waitFor(t, "the FIFO", func() bool { st, err := os.Stat(h.fifo); return err == nil && st.Mode()&fs.ModeNamedPipe != 0 })
	// Backup at boot: the disabled leftover is stopped, nothing else started.
	waitFor(t, "quiesce", func() bool { return rc.state("one-dns") == openrc.Stopped })

	// Garbage never stops or starts anything.
	h.write("garbage", `INSTANCE "ETH0" WEIRD 1`, "", strings.Repeat("x", 10000))
	// Elected: the VIPs arrive, then the lines.
	h.obs.set(obs(10, "ETH0=all", "ETH1=all"))
	h.write(`INSTANCE "ETH0" MASTER 100`, `INSTANCE "ETH1" MASTER 100`, `GROUP "VRouter" MASTER 0`)
	waitFor(t, "serving", func() bool {
		return rc.state("one-router4") == openrc.Started && rc.state("one-nat4") == openrc.Started
	})
	if rc.state("one-dns") != openrc.Stopped || rc.state("one-lvs") != openrc.Stopped {
		t.Fatal("disabled services started")
	}
	h.write("more garbage", `INSTANCE "ETH9" BACKUP 1`)
	// A crashed enabled service is restarted.
	rc.crash("one-nat4")
	waitFor(t, "one-nat4 restarted", func() bool { return slices.Contains(rc.calls(), "one-nat4 restart") })
	// One stopped by hand stays stopped.
	_ = rc.Run(context.Background(), "one-router4", "stop")
	before := len(rc.calls())
	time.Sleep(200 * time.Millisecond) // several checks
	for _, c := range rc.calls()[before:] {
		if strings.HasPrefix(c, "one-router4 start") {
			t.Fatal("a service stopped by hand was restarted")
		}
	}
	if rc.state("one-nat4") != openrc.Started {
		t.Fatal("garbage lines changed the services")
	}

	// keepalived recreated the FIFO (another inode): the daemon reopens it
	// and hears the next lines.
	if err := os.Remove(h.fifo); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(h.fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// The VIPs are still here, so only the line can make it quiesce.
	waitFor(t, "the daemon holding the new FIFO", func() bool { return h.tryWrite() == nil })
	n := len(h.transitions())
	h.write(`INSTANCE "ETH0" BACKUP 100`)
	waitFor(t, "the line on the new FIFO heard", func() bool { return slices.Contains(h.transitions()[n:], "quiesce ") })
	h.obs.set(obs(10, "ETH0=none", "ETH1=none"))
	waitFor(t, "quiesced", func() bool {
		return rc.state("one-nat4") == openrc.Stopped && rc.state("one-router4") == openrc.Stopped
	})

	// Master again, then a reload with NAT4 disabled and DNS enabled:
	// reconcile reloads the running router4, stops nat4, starts dns.
	h.obs.set(obs(10, "ETH0=all", "ETH1=all"))
	h.write(`INSTANCE "ETH0" MASTER 100`, `INSTANCE "ETH1" MASTER 100`)
	waitFor(t, "serving again", func() bool { return rc.state("one-nat4") == openrc.Started })
	h.mu.Lock()
	h.spec = mustSpec(t, strings.NewReplacer("NAT4_ENABLED=YES", "NAT4_ENABLED=NO", "DNS_ENABLED=NO", "DNS_ENABLED=YES").Replace(haEnv))
	h.mu.Unlock()
	rc.reset()
	h.reload <- struct{}{}
	waitFor(t, "reconciled", func() bool {
		return rc.state("one-nat4") == openrc.Stopped && rc.state("one-dns") == openrc.Started
	})
	if !slices.Contains(rc.calls(), "one-router4 reload") {
		t.Fatalf("running enabled service not reloaded in place: %v", rc.calls())
	}

	// Stopping the daemon leaves the services as they are.
	h.cancel()
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
	h.done <- nil
	if rc.state("one-dns") != openrc.Started || rc.state("one-router4") != openrc.Started {
		t.Fatal("stopping one-failover stopped services")
	}
}

// keepalived killed on the master: the services stop although the VIPs
// are still on the NICs (a killed keepalived leaves them).
func TestDaemonKeepalivedKilled(t *testing.T) {
	rc := newFakeRC("one-router4", "one-nat4")
	h := startDaemon(t, mustSpec(t, haEnv), rc, obs(10, "ETH0=all", "ETH1=all"))
	waitFor(t, "serving", func() bool { return rc.state("one-nat4") == openrc.Started })
	h.obs.set(obs(0, "ETH0=all", "ETH1=all"))
	waitFor(t, "quiesced", func() bool {
		return rc.state("one-nat4") == openrc.Stopped && rc.state("one-router4") == openrc.Stopped
	})
}

// A single router (no VIP) serves at once, without keepalived and without
// any FIFO line; a service whose script is missing is skipped.
func TestDaemonSingle(t *testing.T) {
	rc := newFakeRC("one-router4", "one-nat4")
	startDaemon(t, mustSpec(t, "ETH0_IP=10.0.0.1 ONEAPP_VNF_NAT4_ENABLED=YES ONEAPP_VNF_WG_ENABLED=YES"), rc, obs(0))
	waitFor(t, "serving", func() bool {
		return rc.state("one-nat4") == openrc.Started && rc.state("one-router4") == openrc.Started
	})
	for _, c := range rc.calls() {
		if strings.HasPrefix(c, "one-wg") {
			t.Fatalf("a service without a script was run: %v", rc.calls())
		}
	}
}

// A failed start is retried while master.
func TestDaemonRetriesFailedStart(t *testing.T) {
	rc := newFakeRC("one-router4", "one-nat4")
	rc.failStart("one-nat4", fmt.Errorf("transient"))
	startDaemon(t, mustSpec(t, "ETH0_IP=10.0.0.1 ONEAPP_VNF_NAT4_ENABLED=YES"), rc, obs(0))
	waitFor(t, "first attempt", func() bool { return slices.Contains(rc.calls(), "one-nat4 start") })
	rc.failStart("one-nat4", nil)
	waitFor(t, "retried", func() bool { return rc.state("one-nat4") == openrc.Started })
}

// A start that hangs past its deadline is killed (OpenRC still says
// starting) and started again at the next check, like a failed one.
func TestDaemonRetriesAStartKilledAtItsDeadline(t *testing.T) {
	rc := newFakeRC("one-router4", "one-nat4")
	release := rc.hold("one-nat4")
	t.Cleanup(release)
	startDaemon(t, mustSpec(t, "ETH0_IP=10.0.0.1 ONEAPP_VNF_NAT4_ENABLED=YES"), rc, obs(0),
		func(d *Daemon) { d.CommandTimeout = 100 * time.Millisecond })
	waitFor(t, "the start killed at its deadline", func() bool { return slices.Contains(rc.calls(), "one-nat4 start killed") })
	if st := rc.state("one-nat4"); st != openrc.Starting {
		t.Fatalf("one-nat4 is %s after its killed start", st)
	}
	release()
	waitFor(t, "started again", func() bool { return rc.state("one-nat4") == openrc.Started })
}

type fakeReleaser struct {
	mu    sync.Mutex
	calls [][]keepalived.VIP
}

func (f *fakeReleaser) Release(v []keepalived.VIP) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, v)
	return len(v), nil
}

func (f *fakeReleaser) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// watched runs a daemon whose only clock is a minute's tick, with
// keepalived's exit watched (pid 10) and VIP releases recorded.
type watched struct {
	obs *fakeObserver
	rel *fakeReleaser
	mu  sync.Mutex
	pid map[int]chan struct{}
}

func runWatched(t *testing.T, rc *fakeRC) *watched {
	t.Helper()
	w := &watched{obs: &fakeObserver{o: obs(10, "ETH0=all", "ETH1=all")}, rel: &fakeReleaser{}, pid: map[int]chan struct{}{}}
	d := &Daemon{
		Services: rc, Observer: w.obs, FIFO: filepath.Join(t.TempDir(), "fifo"), Log: slog.New(slog.DiscardHandler),
		Tick: time.Minute, Settle: time.Millisecond, Poll: time.Millisecond, VIPs: w.rel,
		Exits: func(pid int) <-chan struct{} {
			w.mu.Lock()
			defer w.mu.Unlock()
			c := make(chan struct{})
			w.pid[pid] = c
			return c
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, mustSpec(t, haEnv)) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// kill makes keepalived (pid 10) exit, its VIPs left on the NICs.
func (w *watched) kill(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	c := w.pid[10]
	w.mu.Unlock()
	if c == nil {
		t.Fatal("keepalived's pid is not watched")
	}
	w.obs.set(obs(0, "ETH0=all", "ETH1=all"))
	close(c)
}

// keepalived's exit is seen at once (no tick for a minute): the services
// stop and the VIPs it left behind are removed.
func TestDaemonKeepalivedExitSeenAtOnce(t *testing.T) {
	rc := newFakeRC("one-router4", "one-nat4")
	w := runWatched(t, rc)
	waitFor(t, "serving", func() bool { return rc.state("one-nat4") == openrc.Started })
	if w.rel.count() != 0 {
		t.Fatal("VIPs released while keepalived runs")
	}
	w.kill(t)
	waitFor(t, "quiesced", func() bool {
		return rc.state("one-nat4") == openrc.Stopped && rc.state("one-router4") == openrc.Stopped
	})
	waitFor(t, "VIPs released", func() bool { return w.rel.count() == 1 })
	if got := len(w.rel.calls[0]); got != 2 {
		t.Fatalf("released %d VIPs, want the 2 of the context", got)
	}
}

// keepalived killed while a service start hangs: the VIPs it left behind
// are removed at once (they would answer for addresses the new master
// holds meanwhile), the hanging start is cancelled, and every service is
// stopped without waiting for the start to end, the killed one included
// (OpenRC still calls it starting, and its stop takes down what the start
// had set up).
func TestDaemonCancelsAHangingStartWhenNoLongerMaster(t *testing.T) {
	rc := newFakeRC("one-router4", "one-nat4")
	release := rc.hold("one-nat4")
	t.Cleanup(release)
	w := runWatched(t, rc)
	waitFor(t, "one-nat4's start under way", func() bool { return slices.Contains(rc.calls(), "one-nat4 start") })
	w.kill(t)
	waitFor(t, "VIPs released", func() bool { return w.rel.count() == 1 })
	waitFor(t, "quiesced while the start still hangs", func() bool {
		return rc.state("one-nat4") == openrc.Stopped && rc.state("one-router4") == openrc.Stopped
	})
	calls := rc.calls()
	killed, stopped := slices.Index(calls, "one-nat4 start killed"), slices.Index(calls, "one-nat4 stop")
	if killed < 0 || stopped < killed {
		t.Fatalf("want one-nat4's start killed, then one-nat4 stopped; calls: %v", calls)
	}
	if n := w.rel.count(); n != 1 {
		t.Fatalf("VIPs released %d times", n)
	}
}
