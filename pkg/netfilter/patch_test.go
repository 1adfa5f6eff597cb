package netfilter_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/netfilter"
	"github.com/hypercx/vrouter/pkg/netfilter/netfiltertest"
)

func TestPatch(t *testing.T) {
	r := func(s string) []string { return strings.Fields(s) }
	for _, tt := range []struct {
		live, want string
		edits      []string
		ok         bool
	}{
		{"a b c d", "a b c d", nil, true},
		{"a b c d", "a c d", []string{"-D C b"}, true},
		{"a b c d", "a b x c d", []string{"-I C 3 x"}, true},
		{"a b c d e f", "x a c d e f y", []string{"-D C b", "-I C 1 x", "-I C 7 y"}, true},
		{"a b c d", "b a c d", nil, false}, // reordered
		{"a b a", "a b", nil, false},       // a rule twice
		{"a b c d", "w x y z", nil, false}, // all new: a rewrite is cheaper
		{"a b", "", nil, false},            // emptied: flush
		{"a b c d", "a b c", []string{"-D C d"}, true},
	} {
		edits, ok := netfilter.Patch("C", r(tt.live), r(tt.want))
		if ok != tt.ok || (ok && !cmp.Equal(edits, tt.edits)) {
			t.Errorf("%q -> %q: %q %t, want %q %t", tt.live, tt.want, edits, ok, tt.edits, tt.ok)
		}
	}
}

// A large chain with a small change is patched in place by one restore:
// the result is the desired chain, and the payload is a few lines.
func TestApplyPatchesLargeChain(t *testing.T) {
	ctx := context.Background()
	f := netfiltertest.New()
	rec := &recorder{IPTables: f}
	a := f.Applier()
	a.Backend = rec
	rs := func(skip, extra int) netfilter.Ruleset {
		var rules []string
		for i := 0; i < 1000; i++ {
			if i != skip {
				rules = append(rules, fmt.Sprintf("-d 10.0.%d.%d/32 -j DNAT --to-destination 10.1.%d.%d", i/250, i%250, i/250, i%250))
			}
			if i == extra {
				rules = append(rules, "-d 192.0.2.1/32 -j DNAT --to-destination 10.9.9.9")
			}
		}
		return netfilter.Ruleset{Owner: "one-test", Tables: []netfilter.Table{{Name: "nat", Chains: []netfilter.Chain{{Name: "T-DNAT", Rules: rules}}}},
			Jumps: []netfilter.Jump{{Table: "nat", From: "PREROUTING", To: "T-DNAT"}}}
	}
	if _, err := a.Apply(ctx, rs(-1, -1)); err != nil {
		t.Fatal(err)
	}
	restores := f.Restores
	want := rs(10, 500)
	res, err := a.Apply(ctx, want)
	if err != nil || !res.Changed || res.Chains != 1 || f.Restores != restores+1 {
		t.Fatalf("%+v %v restores %d", res, err, f.Restores-restores)
	}
	if n := strings.Count(string(rec.last), "\n"); n != 4 {
		t.Errorf("the patch is %d lines, want 4 (table, delete, insert, commit):\n%s", n, rec.last)
	}
	got, _ := f.Rules("nat", "T-DNAT")
	if d := cmp.Diff(want.Tables[0].Chains[0].Rules, got); d != "" {
		t.Fatal(d)
	}
	if drift, err := a.Diff(ctx, want); err != nil || len(drift) != 0 {
		t.Fatal(drift, err)
	}
}

type recorder struct {
	*netfiltertest.IPTables
	last []byte
}

func (r *recorder) Restore(ctx context.Context, table string, payload []byte) error {
	r.last = payload
	return r.IPTables.Restore(ctx, table, payload)
}

// A First jump found twice, the copy further down identical to the one at
// the head: one apply leaves a single jump, at the head. (Deleting the
// duplicate by its text deletes the first match, the one at the head.)
func TestApplyFirstJumpDuplicates(t *testing.T) {
	ctx := context.Background()
	f := netfiltertest.New()
	a := f.Applier()
	rs := netfilter.Ruleset{Owner: "one-test", Tables: []netfilter.Table{{Name: "nat", Chains: []netfilter.Chain{{Name: "T-SNAT"}}}},
		Jumps: []netfilter.Jump{{Table: "nat", From: "POSTROUTING", To: "T-SNAT", First: true}}}
	if _, err := a.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{
		"-t nat -A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE",
		"-t nat -A POSTROUTING -m comment --comment one-test -j T-SNAT",
	} {
		if err := f.Run(cmd); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	post, _ := f.Rules("nat", "POSTROUTING")
	if d := cmp.Diff([]string{"-m comment --comment one-test -j T-SNAT", "-s 192.0.2.0/24 -j MASQUERADE"}, post); d != "" {
		t.Error(d)
	}
	if drift, err := a.Diff(ctx, rs); err != nil || len(drift) != 0 {
		t.Error(drift, err)
	}
}
