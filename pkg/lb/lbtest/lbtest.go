// Package lbtest helps the golden tests of one-lvs and one-haproxy render
// dynamic backends: a context whose ONEGATE_ENDPOINT is "sim" gets a OneGate
// simulator serving the standard fixtures (tests/onegatesim/testdata), with
// the case's own documents from testdata/onegate/<case>/ on top.
package lbtest

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/pkg/lb"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// Env returns env with ONEGATE_ENDPOINT=sim replaced by the URL of a
// simulator that lives until the test ends.
func Env(t *testing.T, name string, env onecontext.Env) onecontext.Env {
	t.Helper()
	if env.Get("ONEGATE_ENDPOINT") != "sim" {
		return env
	}
	dir := t.TempDir()
	if err := sim.CopyFixtures(sim.Fixtures(), dir); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join("testdata", "onegate", name)
	if _, err := os.Stat(own); err == nil {
		if err := sim.CopyFixtures(own, dir); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(sim.New(dir, env.Get("TOKENTXT")))
	t.Cleanup(srv.Close)
	return env.With("ONEGATE_ENDPOINT=" + srv.URL)
}

// Applies records what a daemon's loop applied (its OnApplied), each apply
// as its servers' "host:port" joined by blanks, or "error: ..." .
type Applies chan string

// NewApplies returns a recorder with room for many applies.
func NewApplies() Applies { return make(Applies, 100) }

// Record is the loop's OnApplied.
func (a Applies) Record(res lb.Result, err error) {
	if err != nil {
		a <- "error: " + err.Error()
		return
	}
	var s []string
	for _, l := range res.LBs {
		for _, sv := range l.Servers {
			s = append(s, sv.HostPort())
		}
	}
	a <- strings.Join(s, " ")
}

// WaitFor waits (20 s at most) until an apply serves exactly want.
func (a Applies) WaitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case got := <-a:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("never applied %q", want)
		}
	}
}
