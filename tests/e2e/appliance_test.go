package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// The appliance tests install each router the way the image does (every
// service's install verb plus alpine/rootfs: the driver and one-context's
// hooks) and contextualize it the way one-context does (one_env, then the
// net-90-service-appliance hook). Services not given are not installed; the
// driver skips them.

// appliance is an HA lab whose routers run the appliance.
type appliance struct {
	*lab.HA
	env []string // each router's current one_env
	// gate is OneGate (the simulator) when the test runs one.
	gate *sim.Process
}

// bootAppliance builds the HA lab (haLab), installs the appliance with
// services (haServices when none) in both routers and boots them with the
// shared context.
func bootAppliance(t *testing.T, shared string, services ...string) *appliance {
	t.Helper()
	return bootApplianceWith(t, shared, nil, services...)
}

// bootApplianceWith is bootAppliance with setup run once the lab is built,
// before the routers boot (servers a test adds, the OneGate simulator); the
// function it returns, when not nil, gives router i's own context lines.
func bootApplianceWith(t *testing.T, shared string, setup func(t *testing.T, a *appliance) func(i int) string, services ...string) *appliance {
	t.Helper()
	h := haLab(t)
	a := &appliance{HA: h, env: make([]string, len(h.Routers))}
	if len(services) == 0 {
		services = haServices
	}
	for _, r := range h.Routers {
		if err := r.InstallAppliance(services...); err != nil {
			t.Fatal(err)
		}
	}
	var own func(i int) string
	if setup != nil {
		own = setup(t, a)
	}
	a.contextualize(t, func(i int) string {
		if own != nil {
			return h.Context(i, shared+own(i))
		}
		return h.Context(i, shared)
	})
	return a
}

// contextualize gives every router its context (env(i)) and runs the
// one-context hook on all of them at once (lab.HA.Contextualize). It
// returns when every driver is done; the one-failover daemons act on it
// about a second later.
func (a *appliance) contextualize(t *testing.T, env func(i int) string) time.Time {
	t.Helper()
	since := time.Now()
	for i := range a.Routers {
		a.env[i] = env(i)
	}
	if err := a.Contextualize(func(i int) string { return a.env[i] }); err != nil {
		t.Fatal(err)
	}
	return since
}

// serving waits for one master that runs the data-plane services and a
// backup that runs none, and returns them.
func (a *appliance) serving(t *testing.T) (m, b *lab.Router) {
	t.Helper()
	m, err := a.Master(30 * time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(a.Routers[0])+failoverLog(a.Routers[1]))
	}
	b = a.Other(m)
	waitServing(t, m, true)
	waitServing(t, b, false)
	// Settled: the master's last serve and the backup's quiesce are done.
	if err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		if len(m.FailoverLines(time.Time{}, "msg=applied", "action=serve")) == 0 || len(b.FailoverLines(time.Time{}, "msg=applied", "action=quiesce")) == 0 {
			return fmt.Errorf("one-failover has not served on %s and quiesced on %s", m.Role, b.Role)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m, b
}

// reconciled waits until the master's one-failover carried out the
// reconcile of a contextualization that started at since, and the backup's
// took the new context, and returns the master's reconcile lines.
func (a *appliance) reconciled(t *testing.T, m *lab.Router, since time.Time) []string {
	t.Helper()
	var lines []string
	err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		lines = m.FailoverLines(since, "msg=applied", "action=reconcile")
		if len(lines) == 0 {
			return fmt.Errorf("%s: no reconcile since %s", m.Role, since.Format(time.RFC3339Nano))
		}
		for _, r := range a.Routers {
			if len(r.FailoverLines(since, `msg="context reloaded"`)) == 0 {
				return fmt.Errorf("%s: the context was not reloaded", r.Role)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(m))
	}
	return lines
}

// snapshot is what a contextualization may change on a router.
type snapshot struct {
	kernel lab.KernelState
	starts map[string]string
}

func (a *appliance) snapshot(t *testing.T, r *lab.Router) snapshot {
	t.Helper()
	k, err := r.Kernel()
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{kernel: k, starts: r.Starts()}
}

// serviceVerbs lists the "<service> <verb>" lines one-failover logged for
// the data-plane services since since.
func serviceVerbs(r *lab.Router, since time.Time) []string {
	var out []string
	re := regexp.MustCompile(`msg=service service=\S+ service=(\S+) verb=(\S+)`)
	for _, l := range r.FailoverLines(since, "msg=service ") {
		if m := re.FindStringSubmatch(l); m != nil {
			out = append(out, m[1]+" "+m[2])
		}
	}
	return out
}

// probeOK asks a nettool server from h and fails the test unless the
// answer names want.
func probeOK(t *testing.T, h lab.Host, proto, addr, want string) {
	t.Helper()
	out, err := probe(h, proto, addr, 10*time.Second)
	if err != nil || !strings.Contains(out, "name="+want) {
		t.Fatalf("%s %s from %s: %q %v", proto, addr, h.Netns(), out, err)
	}
}

// probeRefused fails the test if addr answers.
func probeRefused(t *testing.T, h lab.Host, proto, addr string) {
	t.Helper()
	if out, err := lab.Run(context.Background(), h, lab.Bin("nettool"), "probe", proto, addr, "--timeout", "500ms"); err == nil {
		t.Fatalf("%s %s from %s answered: %q", proto, addr, h.Netns(), out)
	}
}
