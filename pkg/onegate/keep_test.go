package onegate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/onegate"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// A restarted daemon (a new client with the same KeepDir) still has the
// last good answers while OneGate does not answer; they come from the same
// endpoint and VM only, unchanged answers are not written again, a 404
// drops them, and a quick question (render, status) never touches them.
func TestKeptAnswersOutliveTheClient(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "one-sdnat4", "onegate")
	l := newLab(t, func(c *onegate.Config) { c.KeepDir = dir })
	ctx := context.Background()
	fresh, err := l.client.Networks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != len(fresh)+1 { // every vnet and the vrouter
		t.Fatalf("kept files %v for %d networks", files, len(fresh))
	}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v (want 0600: documents may hold secrets)", f, st.Mode(), err)
		}
		if b, _ := os.ReadFile(f); strings.Contains(string(b), token) {
			t.Errorf("%s holds the token", f)
		}
	}
	vr := filepath.Join(dir, "vrouter.json")
	before, _ := os.Stat(vr)
	if _, err := l.client.Networks(ctx); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(vr); !after.ModTime().Equal(before.ModTime()) {
		t.Error("an unchanged answer was written again")
	}

	l.sim.Inject(sim.Fault{Status: 500})
	restarted := l.newClient(l.client.Config())
	nets, err := restarted.Networks(ctx)
	if !errors.Is(err, onegate.ErrStale) {
		t.Fatalf("a new client during an outage: %v", err)
	}
	if diff := cmp.Diff(fresh, nets, addrs); diff != "" {
		t.Errorf("kept answers differ from the last good ones:\n%s", diff)
	}
	if !strings.Contains(l.logs.String(), "answer kept on disk") {
		t.Errorf("no warning about the kept answer:\n%s", l.logs.String())
	}

	// Another VM ID (or endpoint) never uses them.
	other := l.client.Config()
	other.VMID = 11
	if n, err := l.newClient(other).VRouter(ctx); n != nil || err == nil || errors.Is(err, onegate.ErrStale) {
		t.Errorf("another VM got the kept answer: %v %v", n, err)
	}
	// Quick questions neither read nor write them.
	if n, err := l.newClient(l.client.Config().Quick()).VRouter(ctx); n != nil || err == nil {
		t.Errorf("a quick question used the kept answer: %v %v", n, err)
	}

	// OneGate says a network is gone: it is no longer kept.
	l.sim.ClearFaults()
	l.sim.Inject(sim.Fault{Path: "/vnet/1", Status: 404, Count: 1})
	if n, err := l.client.VNet(ctx, 1); n != nil || !onegate.IsNotFound(err) {
		t.Fatalf("404: %v %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "vnet-1.json")); !os.IsNotExist(err) {
		t.Errorf("vnet-1.json kept after OneGate said it is gone: %v", err)
	}
}
