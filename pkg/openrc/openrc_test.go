package openrc

import (
	"context"
	"testing"
)

func TestParseStatus(t *testing.T) {
	for out, want := range map[string]State{
		" * status: started\n":                               Started,
		" * status: stopped":                                 Stopped,
		" * status: crashed\n":                               Crashed,
		" * status: crashed (wireguard-go is not running)\n": Crashed,
		" * status:\n":                                       Unknown,
		"garbage":                                            Unknown,
		" * status: weird\n":                                 Unknown,
		"x\n * status: inactive":                             Inactive,
	} {
		if got := ParseStatus(out); got != want {
			t.Errorf("%q: %s, want %s", out, got, want)
		}
	}
}

func TestFake(t *testing.T) {
	ctx := context.Background()
	f := NewFake("one-nat4")
	if err := f.Run(ctx, "one-nat4", "start"); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.Status(ctx, "one-nat4"); st != Started {
		t.Fatal(st)
	}
	if err := f.Run(ctx, "one-wg", "start"); err == nil {
		t.Fatal("missing script started")
	}
	if st, _ := f.Status(ctx, "one-wg"); st != Missing {
		t.Fatal(st)
	}
}

func TestRCMissing(t *testing.T) {
	r := RC{Root: "/nonexistent"}
	if st, err := r.Status(context.Background(), "one-nat4"); st != Missing || err != nil {
		t.Fatal(st, err)
	}
	if err := r.Run(context.Background(), "a b", "start"); err == nil {
		t.Fatal("invalid name accepted")
	}
}
