package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hypercx/vrouter/pkg/fsroot"
)

// fakeDesired is a settable Desired.
type fakeDesired struct {
	mu      sync.Mutex
	digest  map[string]string
	drift   map[string]bool
	invalid map[string]bool
}

func newFakeDesired() *fakeDesired {
	return &fakeDesired{digest: map[string]string{}, drift: map[string]bool{}, invalid: map[string]bool{}}
}

func (f *fakeDesired) set(svc, digest string, drift bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.digest[svc], f.drift[svc] = digest, drift
}

func (f *fakeDesired) setInvalid(svc string, invalid bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invalid[svc] = invalid
}

func (f *fakeDesired) Digest(_ context.Context, svc string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.invalid[svc] {
		return "", fmt.Errorf("%s: %w", svc, ErrInvalidContext)
	}
	return "sum:" + f.digest[svc], nil
}

func (f *fakeDesired) Drifted(_ context.Context, svc string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.invalid[svc] {
		return false, fmt.Errorf("%s: %w", svc, ErrInvalidContext)
	}
	return f.drift[svc], nil
}

// applied counts the daemon's "applied" log lines: one per executed
// transition, written after its service commands.
type applied struct {
	mu sync.Mutex
	n  int
}

func (a *applied) Enabled(context.Context, slog.Level) bool { return true }
func (a *applied) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "applied" {
		a.mu.Lock()
		a.n++
		a.mu.Unlock()
	}
	return nil
}
func (a *applied) WithAttrs([]slog.Attr) slog.Handler { return a }
func (a *applied) WithGroup(string) slog.Handler      { return a }
func (a *applied) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// A reconcile re-applies only the running services whose desired state
// changed or whose live state drifted; a context the service refuses, or
// nothing changed, touches nothing.
func TestReconcileTouchesOnlyWhatChanged(t *testing.T) {
	rc := newFakeRC("one-router4", "one-nat4", "one-dns")
	des := newFakeDesired()
	for _, s := range []string{"one-router4", "one-nat4", "one-dns"} {
		des.set(s, "v1", false)
	}
	env := "ETH0_IP=10.0.0.1 ONEAPP_VNF_NAT4_ENABLED=YES ONEAPP_VNF_DNS_ENABLED=YES"
	log := &applied{}
	h := startDaemon(t, mustSpec(t, env), rc, obs(0), func(d *Daemon) {
		d.Desired = des
		d.Log = slog.New(log)
	})
	waitFor(t, "serving", func() bool {
		return rc.state("one-nat4") == "started" && rc.state("one-router4") == "started" && rc.state("one-dns") == "started"
	})
	waitFor(t, "the first serve applied", func() bool { return log.count() >= 1 })
	reconcile := func() []string {
		t.Helper()
		rc.reset()
		n := log.count()
		h.reload <- struct{}{}
		waitFor(t, "the reconcile applied", func() bool { return log.count() > n })
		return rc.calls()
	}
	touched := func(calls []string) []string {
		var out []string
		for _, c := range calls {
			if !strings.HasSuffix(c, " status") {
				out = append(out, c)
			}
		}
		return out
	}

	// Nothing changed: nothing is run.
	if got := touched(reconcile()); len(got) != 0 {
		t.Fatalf("an unchanged context ran %v", got)
	}
	// NAT4's context changed: one-nat4 alone is reloaded.
	des.set("one-nat4", "v2", false)
	if got := touched(reconcile()); !slices.Equal(got, []string{"one-nat4 reload"}) {
		t.Fatalf("a NAT4 change ran %v, want one-nat4 reload", got)
	}
	// And once applied it is not reloaded again.
	if got := touched(reconcile()); len(got) != 0 {
		t.Fatalf("a second reconcile ran %v", got)
	}
	// Router4's live state drifted (a NIC came back without forwarding),
	// its context did not change: it is re-applied.
	des.set("one-router4", "v1", true)
	if got := touched(reconcile()); !slices.Equal(got, []string{"one-router4 reload"}) {
		t.Fatalf("a drift ran %v, want one-router4 reload", got)
	}
	des.set("one-router4", "v1", false)
	// A service without a reload command is restarted when it changed.
	des.set("one-dns", "v2", false)
	if got := touched(reconcile()); !slices.Equal(got, []string{"one-dns restart"}) {
		t.Fatalf("a DNS change ran %v, want one-dns restart", got)
	}
	// A context the service refuses leaves it running as it is.
	des.setInvalid("one-nat4", true)
	des.set("one-nat4", "v3", true)
	if got := touched(reconcile()); len(got) != 0 {
		t.Fatalf("an invalid context ran %v", got)
	}
	if rc.state("one-nat4") != "started" {
		t.Fatal("an invalid context stopped one-nat4")
	}
	// Fixed back to what runs: nothing to do.
	des.setInvalid("one-nat4", false)
	des.set("one-nat4", "v2", false)
	if got := touched(reconcile()); len(got) != 0 {
		t.Fatalf("the context back to what runs ran %v", got)
	}
}

// A daemon that did not apply a service itself (it was respawned) adopts
// what runs when nothing drifted, and re-applies it when it did.
func TestReconcileUnknownDigest(t *testing.T) {
	rc := newFakeRC("one-router4", "one-nat4")
	_ = rc.Run(context.Background(), "one-router4", "start")
	_ = rc.Run(context.Background(), "one-nat4", "start")
	des := newFakeDesired()
	des.set("one-router4", "v1", false)
	des.set("one-nat4", "v1", true)
	log := &applied{}
	h := startDaemon(t, mustSpec(t, "ETH0_IP=10.0.0.1 ONEAPP_VNF_NAT4_ENABLED=YES"), rc, obs(0), func(d *Daemon) {
		d.Desired = des
		d.Log = slog.New(log)
	})
	waitFor(t, "the first serve", func() bool { return log.count() >= 1 })
	rc.reset()
	n := log.count()
	h.reload <- struct{}{}
	waitFor(t, "the reconcile", func() bool { return log.count() > n })
	var got []string
	for _, c := range rc.calls() {
		if !strings.HasSuffix(c, " status") {
			got = append(got, c)
		}
	}
	if !slices.Equal(got, []string{"one-nat4 reload"}) {
		t.Fatalf("ran %v, want one-nat4 reload only", got)
	}
}

// Binaries asks the real binaries: render's output is the digest, exit 2
// is an invalid context, status exit 3 is drift.
func TestBinaries(t *testing.T) {
	root := t.TempDir()
	script := `#!/bin/sh
for a; do verb=$a; done
case "$verb" in
render) [ -n "$PATH" ] && [ -z "$ONEAPP_LEAK" ] || exit 1; cat "$(dirname "$0")/desired"; exit $(cat "$(dirname "$0")/code") ;;
status) echo "drift" >&2; exit $(cat "$(dirname "$0")/code") ;;
esac
exit 1
`
	sbin := filepath.Join(root, "usr", "sbin")
	if err := os.MkdirAll(sbin, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(sbin, name), []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("one-x", script, 0o755)
	write("desired", "### iptables:nat\n-A X\n", 0o644)
	write("code", "0", 0o644)
	t.Setenv("ONEAPP_LEAK", "YES")
	b := Binaries{Root: fsroot.Root(root)}
	ctx := context.Background()
	d1, err := b.Digest(ctx, "one-x")
	if err != nil {
		t.Fatal(err)
	}
	write("desired", "### iptables:nat\n-A Y\n", 0o644)
	if d2, err := b.Digest(ctx, "one-x"); err != nil || d2 == d1 {
		t.Fatalf("digest did not follow the render: %v", err)
	}
	if drift, err := b.Drifted(ctx, "one-x"); err != nil || drift {
		t.Fatalf("exit 0: %v %v", drift, err)
	}
	write("code", "3", 0o644)
	if drift, err := b.Drifted(ctx, "one-x"); err != nil || !drift {
		t.Fatalf("exit 3: %v %v", drift, err)
	}
	write("code", "2", 0o644)
	if _, err := b.Digest(ctx, "one-x"); !isInvalid(err) {
		t.Fatalf("render exit 2: %v", err)
	}
	if _, err := b.Drifted(ctx, "one-x"); !isInvalid(err) {
		t.Fatalf("status exit 2: %v", err)
	}
	write("code", "1", 0o644)
	if _, err := b.Digest(ctx, "one-x"); err == nil || isInvalid(err) {
		t.Fatalf("render exit 1: %v", err)
	}
	if _, err := b.Digest(ctx, "../x"); err == nil {
		t.Fatal("a path as a service name")
	}
}

func isInvalid(err error) bool { return errors.Is(err, ErrInvalidContext) }

// slowDesired answers Digest only when its context ends (a OneGate that
// does not answer), and records that it was cancelled.
type slowDesired struct {
	*fakeDesired
	slow      chan struct{} // closed: Digest blocks
	asking    chan struct{} // closed once Digest blocks
	cancelled chan struct{}
	once      sync.Once
	askOnce   sync.Once
	mu        sync.Mutex
	answered  int // Digest calls answered at once
}

func (s *slowDesired) answers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.answered
}

func (s *slowDesired) Digest(ctx context.Context, svc string) (string, error) {
	select {
	case <-s.slow:
		s.askOnce.Do(func() { close(s.asking) })
		<-ctx.Done()
		s.once.Do(func() { close(s.cancelled) })
		return "", ctx.Err()
	default:
		s.mu.Lock()
		s.answered++
		s.mu.Unlock()
		return s.fakeDesired.Digest(ctx, svc)
	}
}

// A reconcile whose questions hang (a slow OneGate behind a service's
// render) never holds up keepalived's events: a BACKUP arriving meanwhile
// stops the services at once, the questions are cancelled, and the
// reconcile re-applies nothing.
func TestReconcileNeverDelaysAFailover(t *testing.T) {
	rc := newFakeRC("one-router4", "one-nat4")
	des := &slowDesired{fakeDesired: newFakeDesired(), slow: make(chan struct{}), asking: make(chan struct{}), cancelled: make(chan struct{})}
	des.set("one-router4", "v1", false)
	des.set("one-nat4", "v1", false)
	spec := mustSpec(t, haEnv)
	h := startDaemon(t, spec, rc, obs(10, "ETH0=all", "ETH1=all"), func(d *Daemon) { d.Desired = des })
	waitFor(t, "the FIFO", func() bool { _, err := os.Stat(h.fifo); return err == nil })
	h.write(`INSTANCE "ETH0" MASTER 100`, `INSTANCE "ETH1" MASTER 100`)
	waitFor(t, "serving", func() bool {
		return rc.state("one-router4") == "started" && rc.state("one-nat4") == "started"
	})
	// What the two started services applied is noted (a digest each):
	// from here on only the reconcile asks.
	waitFor(t, "the digests of the serve", func() bool { return des.answers() == 2 })
	close(des.slow)
	rc.reset()
	h.reload <- struct{}{}
	// The reconcile is asking (and hanging); the other router takes over.
	<-des.asking
	h.obs.set(obs(10, "ETH0=none", "ETH1=none"))
	h.write(`INSTANCE "ETH0" BACKUP 100`, `INSTANCE "ETH1" BACKUP 100`)
	waitFor(t, "quiesced", func() bool {
		return rc.state("one-router4") == "stopped" && rc.state("one-nat4") == "stopped"
	})
	select {
	case <-des.cancelled:
	default:
		t.Fatal("the reconcile's questions were not cancelled")
	}
	for _, c := range rc.calls() {
		if strings.HasSuffix(c, " reload") || strings.HasSuffix(c, " restart") {
			t.Fatalf("the cancelled reconcile ran %q", c)
		}
	}
}
