package kernel

import (
	"context"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/tests/lab"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// TestOneGateSimulatorInLab runs bin/lab/onegatesim in a "cloud" namespace
// and talks to it from a "router" namespace, the way the services' kernel and
// end-to-end tests use it: documents changed and faults injected by writing
// files in its fixture directory, and through its control API.
func TestOneGateSimulatorInLab(t *testing.T) {
	l := needLab(t)
	cloud, err := l.Host("cloud")
	if err != nil {
		t.Fatal(err)
	}
	rtr, err := l.Host("rtr")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Link(cloud, "gate0", rtr, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Addr(cloud, "gate0", "169.254.16.9/24"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Addr(rtr, "eth0", "169.254.16.10/24"); err != nil {
		t.Fatal(err)
	}
	const token = "lab-token-0123"
	gate, err := sim.Start(l, cloud, "169.254.16.9:5030", token, "")
	if err != nil {
		t.Fatal(err)
	}
	// get fetches path from the router namespace (busybox wget: in
	// install-deps, no curl needed).
	get := func(path string, withToken bool) (string, error) {
		args := []string{"busybox", "wget", "-q", "-O", "-", "--header", "X-ONEGATE-VMID: 10"}
		if withToken {
			args = append(args, "--header", "X-ONEGATE-TOKEN: "+token)
		}
		return lab.Run(context.Background(), rtr, append(args, gate.URL+path)...)
	}
	if out, err := get("/vrouter", true); err != nil || !strings.Contains(out, `"NAME":"vr-lab"`) {
		t.Fatalf("GET /vrouter: %v\n%s", err, out)
	}
	if _, err := get("/vrouter", false); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("without the token: %v", err)
	}
	// A document changed while it runs.
	if err := gate.WriteDocument("vrouter", []byte(`{"VROUTER": {"ID": "3", "NAME": "changed", "VMS": {"ID": "10"}, "TEMPLATE": {}}}`)); err != nil {
		t.Fatal(err)
	}
	if out, err := get("/vrouter", true); err != nil || !strings.Contains(out, `"NAME":"changed"`) {
		t.Errorf("after WriteDocument: %v\n%s", err, out)
	}
	// A fault from the fixture directory: the next request only.
	if err := gate.SetFaults(sim.Fault{Path: "/vm", Status: 503, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := get("/vm", true); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("faults.json: %v", err)
	}
	if out, err := get("/vm", true); err != nil || !strings.Contains(out, `"vr-lab-0"`) {
		t.Errorf("after the fault: %v\n%s", err, out)
	}
	// A fault through the control API.
	if _, err := lab.Run(context.Background(), rtr, "busybox", "wget", "-q", "-O", "-", "--post-data", `{"path": "/service", "status": 500}`, gate.URL+"/_sim/faults"); err != nil {
		t.Fatal(err)
	}
	if _, err := get("/service", true); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("control API fault: %v", err)
	}
	if strings.Contains(gate.Proc.Output(), token) {
		t.Errorf("the simulator logged the token:\n%s", gate.Proc.Output())
	}
	if !strings.Contains(gate.Proc.Output(), "path=/vrouter") {
		t.Errorf("the simulator does not log requests:\n%s", gate.Proc.Output())
	}
}
