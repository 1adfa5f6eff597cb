package onegate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/pkg/onegate"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

func TestUpdateVM(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	wg := "W0ludGVyZmFjZV0KUHJpdmF0ZUtleSA9IGFiYz0K" // base64, '=' included
	if err := l.client.UpdateVM(ctx, onegate.Self, map[string]string{"ONEGATE_VNF_WG_SERVER": wg, "ONEGATE_STATE": "MASTER since 12:00"}); err != nil {
		t.Fatal(err)
	}
	ut, err := l.sim.UserTemplate(10)
	if err != nil || ut["ONEGATE_VNF_WG_SERVER"] != wg || ut["ONEGATE_STATE"] != "MASTER since 12:00" {
		t.Fatalf("VM 10 user template: %v %v", ut, err)
	}
	// Served back: in this VM's document ...
	vm, err := l.client.VM(ctx)
	if err != nil || vm.UserTemplate["ONEGATE_VNF_WG_SERVER"] != wg {
		t.Errorf("GET /vm after the update: %v %v", vm, err)
	}
	// ... and, for a backend, on its leases.
	if err := l.client.UpdateVM(ctx, 21, map[string]string{"ONEGATE_LB0_SERVER_PORT": "9090"}); err != nil {
		t.Fatal(err)
	}
	priv, err := l.client.VNet(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, le := range priv.Leases() {
		if le.VM == 21 {
			found = le.Backend && le.OneGate["ONEGATE_LB0_SERVER_PORT"] == "9090"
		}
	}
	if !found {
		t.Errorf("the update is not on VM 21's lease: %+v", priv.Leases())
	}
	// Erase, twice: a missing attribute is not an error, and is not retried.
	if err := l.client.EraseVM(ctx, onegate.Self, "ONEGATE_STATE"); err != nil {
		t.Fatal(err)
	}
	before := l.requests("/vm")
	if err := l.client.EraseVM(ctx, onegate.Self, "ONEGATE_STATE"); err != nil {
		t.Errorf("erasing a missing attribute: %v", err)
	}
	if n := l.requests("/vm") - before; n != 1 {
		t.Errorf("erasing a missing attribute took %d requests", n)
	}
	if ut, _ := l.sim.UserTemplate(10); ut["ONEGATE_STATE"] != "" || ut["ONEGATE_VNF_WG_SERVER"] != wg {
		t.Errorf("after erase: %v", ut)
	}
	// Restricted by OneGate: a 403, not retried.
	before = l.requests("/vm")
	if err := l.client.UpdateVM(ctx, onegate.Self, map[string]string{"SERVICE_ID": "8"}); err == nil || !strings.Contains(err.Error(), "HTTP 403") {
		t.Errorf("restricted attribute: %v", err)
	}
	if n := l.requests("/vm") - before; n != 1 {
		t.Errorf("a 403 was sent %d times", n)
	}
	// Updates are retried like reads.
	l.sim.Inject(sim.Fault{Method: "PUT", Status: 503, Count: 1})
	if err := l.client.UpdateVM(ctx, onegate.Self, map[string]string{"ONEGATE_X": "1"}); err != nil {
		t.Errorf("update after a 503: %v", err)
	}
	l.noToken()
}

func TestUpdateVMRefusesInjection(t *testing.T) {
	l := newLab(t)
	const secret = "PrivateKey=abc"
	for name, attrs := range map[string]map[string]string{
		"newline":   {"ONEGATE_A": secret + "\nSERVICE_ID=8"},
		"CR":        {"ONEGATE_A": secret + "\r"},
		"comma":     {"ONEGATE_A": secret + ",x"},
		"quote":     {"ONEGATE_A": secret + `"`},
		"backslash": {"ONEGATE_A": secret + `\n`},
		"bracket":   {"ONEGATE_A": "[" + secret + "]"},
		"empty":     {"ONEGATE_A": ""},
		"bad key":   {"A=B": "x"},
		"key blank": {"A B": "x"},
		"digit key": {"1A": "x"},
		"one bad":   {"ONEGATE_OK": "fine", "ONEGATE_B": secret + "\n"},
	} {
		err := l.client.UpdateVM(context.Background(), 21, attrs)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the value is in the error: %v", name, err)
		}
	}
	if n := l.requests("/vms/"); n != 0 {
		t.Errorf("%d invalid updates were sent", n)
	}
	if err := l.client.EraseVM(context.Background(), onegate.Self, "A\nB"); err == nil {
		t.Error("EraseVM accepted a bad name")
	}
	if err := l.client.UpdateVM(context.Background(), -5, map[string]string{"A": "b"}); err == nil {
		t.Error("UpdateVM accepted VM -5")
	}
}
