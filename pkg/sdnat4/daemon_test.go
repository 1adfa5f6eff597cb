package sdnat4

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/onegate"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// vm20NoAlias is the fixture VM 20 after its EXTERNAL alias was detached.
const vm20NoAlias = `{"VM": {"ID": "20", "NAME": "web", "STATE": "3", "LCM_STATE": "3", "USER_TEMPLATE": {},
	"TEMPLATE": {"CONTEXT": {"NETWORK": "YES"},
	"NIC": {"NIC_ID": "0", "NAME": "NIC0", "NETWORK": "private", "NETWORK_ID": "1", "IP": "10.0.1.20", "MAC": "02:00:0a:00:01:14"}}}}`

func (w *world) daemon(t *testing.T) (*Daemon, Spec) {
	t.Helper()
	s, err := FromContext(w.env, "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	// One attempt per request: an outage shows at once.
	s.OneGate.Attempts = 1
	return &Daemon{Log: slog.New(slog.DiscardHandler), Apply: w.applier(), NewGate: NewGate}, s
}

func loPublic(w *world) []string {
	var out []string
	for _, a := range w.nl.Addrs("lo") {
		if strings.HasSuffix(a, " SDNAT4") {
			out = append(out, strings.TrimSuffix(a, " SDNAT4"))
		}
	}
	return out
}

// The daemon's rounds: first poll maps, an unchanged poll writes nothing,
// an alias removed or added in OneGate follows at the next poll, a OneGate
// outage keeps every mapping (also through a fresh client), and the
// mappings come back in line when OneGate does.
func TestDaemonPolls(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, guideEnv)
	d, s := w.daemon(t)
	var last Poll
	d.OnPoll = func(p Poll) { last = p }

	d.poll(ctx, s)
	if got := loPublic(w); !slices.Equal(got, []string{"203.0.113.20/32", "203.0.113.50/32"}) || last.Err != nil {
		t.Fatalf("first poll: %v %+v", got, last)
	}
	writes, saves := w.writes(), w.nf.Saves
	d.poll(ctx, s)
	if w.writes() != writes || last.Result.Changed {
		t.Fatalf("an unchanged poll wrote %d times", w.writes()-writes)
	}
	if w.nf.Saves == saves {
		t.Fatal("an unchanged poll did not even look at the rules (drift would go unnoticed)")
	}

	w.sim.SetDocument("vm-20", []byte(vm20NoAlias))
	d.poll(ctx, s)
	if got := loPublic(w); !slices.Equal(got, []string{"203.0.113.50/32"}) {
		t.Fatalf("alias removed: %v", got)
	}
	dnat, _ := w.nf.Rules("nat", ChainDNAT)
	if strings.Contains(strings.Join(dnat, "\n"), "203.0.113.20") {
		t.Fatalf("DNAT4 still maps the removed alias:\n%s", strings.Join(dnat, "\n"))
	}
	w.sim.Reset() // back to the fixture file: the alias again
	d.poll(ctx, s)
	if got := loPublic(w); !slices.Equal(got, []string{"203.0.113.20/32", "203.0.113.50/32"}) {
		t.Fatalf("alias added: %v", got)
	}

	// Outage: every request fails.
	w.sim.Inject(sim.Fault{Status: 503})
	before, writes := w.nf.Dump(), w.writes()
	d.poll(ctx, s)
	if !errors.Is(last.GateErr, onegate.ErrStale) || w.writes() != writes || w.nf.Dump() != before || len(loPublic(w)) != 2 {
		t.Fatalf("outage: %v, %d writes, %v", last.GateErr, w.writes()-writes, loPublic(w))
	}
	// A new client (the endpoint changed) knows no answer at all: the
	// daemon keeps what it last knew.
	s2 := s
	s2.OneGate.VMID = 11
	d.poll(ctx, s2)
	if last.GateErr == nil || errors.Is(last.GateErr, onegate.ErrStale) || w.writes() != writes || len(loPublic(w)) != 2 {
		t.Fatalf("outage, new client: %v, %d writes, %v", last.GateErr, w.writes()-writes, loPublic(w))
	}
	// Drift during the outage is still repaired from what is known.
	if err := w.applier().Addrs.Remove([]netip.Prefix{netip.MustParsePrefix("203.0.113.20/32")}); err != nil {
		t.Fatal(err)
	}
	d.poll(ctx, s2)
	if last.GateErr == nil || len(loPublic(w)) != 2 {
		t.Fatalf("drift during the outage: %v %v", last.GateErr, loPublic(w))
	}
	w.sim.ClearFaults()
	writes = w.writes()
	d.poll(ctx, s2)
	if last.GateErr != nil || len(loPublic(w)) != 2 || w.writes() != writes {
		t.Fatalf("after the outage: %v %v, %d writes", last.GateErr, loPublic(w), w.writes()-writes)
	}
}

// A daemon that starts during an outage changes nothing.
func TestDaemonStartsDuringOutage(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, guideEnv)
	d, s := w.daemon(t)
	w.sim.Inject(sim.Fault{Status: 500})
	writes := w.writes()
	d.poll(ctx, s)
	if w.writes() != writes || len(loPublic(w)) != 0 {
		t.Fatalf("%d writes, %v", w.writes()-writes, loPublic(w))
	}
}

// Run: SIGHUP (the Reload channel) re-reads the context; a context that
// does not parse keeps the last good one; disabling removes the mappings
// and enabling brings them back.
func TestDaemonReload(t *testing.T) {
	w := newWorld(t, guideEnv)
	d, s := w.daemon(t)
	s.Refresh = time.Hour // only reloads poll
	polls := make(chan Poll, 10)
	d.OnPoll = func(p Poll) { polls <- p }
	reload := make(chan struct{})
	d.Reload = reload
	next := make(chan func() (Spec, error), 1)
	d.LoadSpec = func() (Spec, error) { return (<-next)() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, s) }()
	wait := func() Poll {
		t.Helper()
		select {
		case p := <-polls:
			return p
		case <-time.After(30 * time.Second):
			t.Fatal("no poll")
		}
		return Poll{}
	}
	if p := wait(); len(p.Mappings) != 2 {
		t.Fatalf("first poll: %+v", p)
	}
	next <- func() (Spec, error) { return Spec{}, errors.New("ONEAPP_VNF_SDNAT4_ENABLED=\"maybe\": not a boolean") }
	reload <- struct{}{}
	off := s
	off.Enabled = false
	next <- func() (Spec, error) { return off, nil }
	reload <- struct{}{}
	if p := wait(); p.Enabled || len(loPublic(w)) != 0 {
		t.Fatalf("disabled: %+v %v", p, loPublic(w))
	}
	if chains, _ := w.nf.Rules("nat", ChainSNAT); chains != nil {
		t.Fatalf("SNAT4 left: %v", chains)
	}
	next <- func() (Spec, error) { return s, nil }
	reload <- struct{}{}
	if p := wait(); len(p.Mappings) != 2 || len(loPublic(w)) != 2 {
		t.Fatalf("enabled again: %+v %v", p, loPublic(w))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(loPublic(w)) != 2 {
		t.Fatal("the daemon's exit removed the mappings (stop does that, not a restart)")
	}
}

// A document OneGate garbles (not the object it should be) is an error, not
// "no leases": its last good answer is used and every mapping stays.
func TestDaemonMalformedDocumentKeepsMappings(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, guideEnv)
	d, s := w.daemon(t)
	var last Poll
	d.OnPoll = func(p Poll) { last = p }
	d.poll(ctx, s)
	writes := w.writes()
	w.sim.SetDocument("vnet-1", []byte(`{"VNET": "garbage"}`))
	d.poll(ctx, s)
	if !errors.Is(last.GateErr, onegate.ErrStale) || !strings.Contains(last.GateErr.Error(), "no VNET object") {
		t.Fatalf("gate error: %v", last.GateErr)
	}
	if len(last.Mappings) != 2 || w.writes() != writes || len(loPublic(w)) != 2 {
		t.Fatalf("%d mappings, %d writes, %v", len(last.Mappings), w.writes()-writes, loPublic(w))
	}
}

// A lease that cannot be mapped is a warning naming it, once while it
// stays skipped; the rest is mapped.
func TestDaemonWarnsSkippedLeaseOnce(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, guideEnv)
	w.sim, w.env = simulate(t, fixtures(t, "bad-leases"), onecontext.FromPairs(strings.Fields(guideEnv)...))
	d, s := w.daemon(t)
	var logs bytes.Buffer
	d.Log = slog.New(slog.NewTextHandler(&logs, nil))
	var last Poll
	d.OnPoll = func(p Poll) { last = p }
	d.poll(ctx, s)
	d.poll(ctx, s)
	if got := loPublic(w); !slices.Equal(got, []string{"203.0.113.20/32", "203.0.113.62/32"}) || last.Err != nil {
		t.Fatalf("mapped: %v %v", got, last.Err)
	}
	for _, lease := range []string{"vnet 0 AR 0 lease 3 (no IP, VM 60)", "vnet 0 AR 0 lease 4 (IP 203.0.113.61, VM 61)"} {
		want := `level=WARN msg="external lease not mapped" lease="` + lease + `"`
		if n := strings.Count(logs.String(), want); n != 1 {
			t.Errorf("%d warnings for %s, want 1:\n%s", n, lease, logs.String())
		}
	}
}
