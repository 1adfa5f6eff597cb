package netfilter_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hypercx/vrouter/pkg/netfilter"
	"github.com/hypercx/vrouter/pkg/netfilter/netfiltertest"
)

func sample() netfilter.Ruleset {
	return netfilter.Ruleset{
		Owner: "one-test",
		Tables: []netfilter.Table{{Name: "nat", Chains: []netfilter.Chain{
			{Name: "T-DNAT", Rules: []string{"-d 1.2.3.4/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.2:8080"}},
			{Name: "T-MASQ", Rules: []string{"-o eth0 -j MASQUERADE"}},
		}}},
		Jumps: []netfilter.Jump{
			{Table: "nat", From: "PREROUTING", To: "T-DNAT"},
			{Table: "nat", From: "POSTROUTING", To: "T-MASQ", First: true},
		},
	}
}

func TestApplyTwiceTeardownTwice(t *testing.T) {
	ctx := context.Background()
	f := netfiltertest.New()
	if err := f.Run("-t nat -N CANARY"); err != nil {
		t.Fatal(err)
	}
	if err := f.Run("-t nat -A POSTROUTING -o eth9 -j CANARY"); err != nil {
		t.Fatal(err)
	}
	before := f.Dump()
	a := f.Applier()

	res, err := a.Apply(ctx, sample())
	if err != nil || !res.Changed || res.Chains != 2 || res.Jumps != 2 {
		t.Fatalf("first apply: %+v %v", res, err)
	}
	post, _ := f.Rules("nat", "POSTROUTING")
	if d := cmp.Diff([]string{"-m comment --comment one-test -j T-MASQ", "-o eth9 -j CANARY"}, post); d != "" {
		t.Error("POSTROUTING (First jump goes in front of the canary):", d)
	}
	writes := f.Writes
	res, err = a.Apply(ctx, sample())
	if err != nil || res.Changed || f.Writes != writes {
		t.Fatalf("second apply changed something: %+v %v writes %d->%d", res, err, writes, f.Writes)
	}
	if drift, err := a.Diff(ctx, sample()); err != nil || len(drift) != 0 {
		t.Fatalf("drift after apply: %v %v", drift, err)
	}

	// One rule changes: only that chain is rewritten.
	rs := sample()
	rs.Tables[0].Chains[1].Rules = []string{"-o eth1 -j MASQUERADE"}
	res, err = a.Apply(ctx, rs)
	if err != nil || res.Chains != 1 || res.Jumps != 0 {
		t.Fatalf("partial apply: %+v %v", res, err)
	}

	for i := 0; i < 2; i++ {
		if err := a.Teardown(ctx, sample()); err != nil {
			t.Fatalf("teardown %d: %v", i, err)
		}
		if d := cmp.Diff(before, f.Dump()); d != "" {
			t.Fatalf("teardown %d left state (-before +after):\n%s", i, d)
		}
	}
}

func TestTeardownOnEmpty(t *testing.T) {
	f := netfiltertest.New()
	if err := f.Applier().Teardown(context.Background(), sample()); err != nil {
		t.Fatal(err)
	}
	if f.Writes != 0 {
		t.Fatalf("teardown of nothing wrote %d times", f.Writes)
	}
}

func TestDriftRepaired(t *testing.T) {
	ctx := context.Background()
	f := netfiltertest.New()
	a := f.Applier()
	if _, err := a.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	// Someone deletes a jump and adds a rule to an owned chain, and a second jump.
	_ = f.Run("-t nat -D PREROUTING -m comment --comment one-test -j T-DNAT")
	_ = f.Run("-t nat -A T-MASQ -j ACCEPT")
	_ = f.Run("-t nat -A POSTROUTING -j T-MASQ")
	drift, _ := a.Diff(ctx, sample())
	if len(drift) != 3 {
		t.Fatalf("drift = %q", drift)
	}
	if _, err := a.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	if drift, _ := a.Diff(ctx, sample()); len(drift) != 0 {
		t.Fatalf("still drifting: %q", drift)
	}
}

func TestRetiredChainsRemoved(t *testing.T) {
	ctx := context.Background()
	f := netfiltertest.New()
	_ = f.Run("-t nat -N T-OLD")
	_ = f.Run("-t nat -A PREROUTING -j T-OLD")
	rs := sample()
	rs.Retired = []netfilter.ChainRef{{Table: "nat", Chain: "T-OLD"}}
	if _, err := f.Applier().Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Rules("nat", "T-OLD"); ok {
		t.Fatal("retired chain still there")
	}
	pre, _ := f.Rules("nat", "PREROUTING")
	if d := cmp.Diff([]string{"-m comment --comment one-test -j T-DNAT"}, pre); d != "" {
		t.Fatal(d)
	}
}

func TestRestoreFailureShowsLines(t *testing.T) {
	f := netfiltertest.New()
	f.FailRestore = "iptables-restore: line 4 failed"
	_, err := f.Applier().Apply(context.Background(), sample())
	if err == nil || !strings.Contains(err.Error(), "=>    4: -A T-DNAT -d 1.2.3.4/32") {
		t.Fatalf("error lacks the failing line: %v", err)
	}
	if f.Writes != 0 {
		t.Fatal("failed restore changed state")
	}
}

func TestValidate(t *testing.T) {
	rs := sample()
	rs.Tables[0].Chains[0].Rules = append(rs.Tables[0].Chains[0].Rules, "-j MISSING")
	if err := rs.Validate(); err == nil || !strings.Contains(err.Error(), "MISSING") {
		t.Fatalf("dangling jump accepted: %v", err)
	}
	rs = sample()
	rs.Tables[0].Chains[0].Rules = []string{"-j ACCEPT\n-A PREROUTING -j DROP"}
	if err := rs.Validate(); err == nil {
		t.Fatal("line break accepted")
	}
	rs = sample()
	rs.Jumps = append(rs.Jumps, netfilter.Jump{Table: "nat", From: "OUTPUT", To: "NOPE"})
	if err := rs.Validate(); err == nil {
		t.Fatal("jump to undeclared chain accepted")
	}
	// The fake refuses a dangling jump too (the kernel's nf_tables backend
	// would accept it under --test).
	f := netfiltertest.New()
	if err := f.Restore(context.Background(), "nat", []byte("*nat\n:X - [0:0]\n-A X -j Y\nCOMMIT\n")); err == nil {
		t.Fatal("fake accepted a dangling jump")
	}
}

func TestFields(t *testing.T) {
	got := netfilter.Fields(`-m comment --comment "a \"b\" c" -j X`)
	want := []string{"-m", "comment", "--comment", `a "b" c`, "-j", "X"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatal(d)
	}
	if netfilter.Target("-p tcp -j DNAT --to-destination 1.2.3.4") != "DNAT" {
		t.Fatal("target")
	}
}

func TestExtractLines(t *testing.T) {
	got := netfilter.ExtractLines([]byte("a\nb\nc\nd\ne\n"), 1, 1)
	if got != "=>    1: a\n      2: b" {
		t.Fatalf("%q", got)
	}
}
