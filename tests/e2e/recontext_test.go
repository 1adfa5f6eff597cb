package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/pkg/router4"
	"github.com/hypercx/vrouter/tests/lab"
)

// Recontextualization of the HA appliance through one-context's hook: the
// same context again changes nothing on either router (no service started,
// restarted or reloaded, no rule, address or sysctl changed); a context that
// changes only NAT4's port forwards re-applies one-nat4 alone; a NIC
// attached, then detached, is followed by every service.
func TestRecontext(t *testing.T) {
	a := bootAppliance(t, haShared)
	m, b := a.serving(t)
	probeOK(t, a.VMs[0], "tcp", lab.InetAddr+":7000", "inet")
	probeOK(t, a.Inet, "tcp", lab.PublicVIP+":8080", "vm1")
	// status is clean on both: the master applied everything, the backup
	// (its services stopped by one-failover) nothing.
	for _, r := range a.Routers {
		for _, svc := range haServices {
			rep, code := status(t, r, svc)
			if code != 0 || rep.Applied != (r == m || svc == "one-failover") {
				t.Errorf("%s %s status: exit %d %+v", r.Role, svc, code, rep)
			}
		}
	}

	t.Run("unchanged", func(t *testing.T) {
		before := map[*lab.Router]snapshot{m: a.snapshot(t, m), b: a.snapshot(t, b)}
		natRuns := len(m.LogLines("/var/log/one-appliance/one-nat4.log", `msg="NAT4 applied"`))
		since := a.contextualize(t, func(i int) string { return a.env[i] })
		lines := a.reconciled(t, m, since)
		for r, s := range before {
			after := a.snapshot(t, r)
			if d := s.kernel.Diff(after.kernel); len(d) > 0 {
				t.Errorf("%s: an unchanged context changed the kernel:\n%s", r.Role, strings.Join(d, "\n"))
			}
			if d := lab.ChangedStarts(s.starts, after.starts); len(d) > 0 {
				t.Errorf("%s: an unchanged context restarted:\n%s", r.Role, strings.Join(d, "\n"))
			}
			if v := serviceVerbs(r, since); len(v) > 0 {
				t.Errorf("%s: an unchanged context ran %v", r.Role, v)
			}
		}
		for _, l := range lines {
			if !strings.Contains(l, "started=0 reloaded=0 stopped=0 failed=0") {
				t.Errorf("reconcile did something: %s", l)
			}
		}
		if n := len(m.LogLines("/var/log/one-appliance/one-nat4.log", `msg="NAT4 applied"`)); n != natRuns {
			t.Errorf("one-nat4 applied %d times", n-natRuns)
		}
	})

	t.Run("nat4 only", func(t *testing.T) {
		before := map[*lab.Router]snapshot{m: a.snapshot(t, m), b: a.snapshot(t, b)}
		routerRuns := len(m.LogLines("/var/log/one-appliance/one-router4.log", "msg=applied"))
		since := a.contextualize(t, func(i int) string {
			return strings.Replace(a.env[i], `:8080:10.0.0.12:80"`, `:8081:10.0.0.12:81"`, 1)
		})
		a.reconciled(t, m, since)
		if v := serviceVerbs(m, since); !slices.Equal(v, []string{"one-nat4 reload"}) {
			t.Fatalf("a NAT4 change ran %v on the master, want one-nat4 reload alone\n%s", v, failoverLog(m))
		}
		after := a.snapshot(t, m)
		for _, d := range before[m].kernel.Diff(after.kernel) {
			if !strings.HasPrefix(d, "iptables ") || !strings.Contains(d, "NAT4-DNAT") {
				t.Errorf("a NAT4 change changed more than NAT4-DNAT: %s", d)
			}
		}
		if len(before[m].kernel.Diff(after.kernel)) == 0 {
			t.Error("the new port forward is not in the kernel")
		}
		if d := lab.ChangedStarts(before[m].starts, after.starts); len(d) > 0 {
			t.Errorf("a NAT4 change restarted:\n%s", strings.Join(d, "\n"))
		}
		if n := len(m.LogLines("/var/log/one-appliance/one-router4.log", "msg=applied")); n != routerRuns {
			t.Errorf("one-router4 applied %d times", n-routerRuns)
		}
		// The backup runs no data-plane service: nothing to change there.
		if d := before[b].kernel.Diff(a.snapshot(t, b).kernel); len(d) > 0 {
			t.Errorf("%s (backup): %s", b.Role, strings.Join(d, "\n"))
		}
		probeOK(t, a.Inet, "tcp", lab.PublicVIP+":8081", "vm1")
		probeRefused(t, a.Inet, "tcp", lab.PublicVIP+":8080")
	})

	// A NIC attached to both routers (an address, no floating IP), then
	// detached: one-router4 alone follows it on the master (forwarding on
	// the new NIC, then its setting gone); NAT4 and VRRP do not change
	// (the NIC has no VIP and is not an outgoing NIC), so nothing restarts.
	lan, err := a.Lab.Segment("lan2")
	if err != nil {
		t.Fatal(err)
	}
	nicChange := func(t *testing.T, change func(), env func(i int) string, converged func() error) {
		t.Helper()
		before := map[*lab.Router]snapshot{m: a.snapshot(t, m), b: a.snapshot(t, b)}
		change()
		since := a.contextualize(t, env)
		a.reconciled(t, m, since)
		if v := serviceVerbs(m, since); !slices.Equal(v, []string{"one-router4 reload"}) {
			t.Fatalf("ran %v on the master, want one-router4 reload alone\n%s", v, failoverLog(m))
		}
		if err := lab.Eventually(30*time.Second, 100*time.Millisecond, converged); err != nil {
			t.Fatalf("%v\n%s", err, failoverLog(m))
		}
		for r, s := range before {
			if d := lab.ChangedStarts(s.starts, a.snapshot(t, r).starts); len(d) > 0 {
				t.Errorf("%s: restarted:\n%s", r.Role, strings.Join(d, "\n"))
			}
		}
		if hs := a.Holders(); len(hs) != 1 || hs[0] != m {
			t.Fatal("the VIPs moved")
		}
		probeOK(t, a.VMs[0], "tcp", lab.InetAddr+":7000", "inet")
		probeOK(t, a.Inet, "tcp", lab.PublicVIP+":8081", "vm1")
	}
	t.Run("nic attached", func(t *testing.T) {
		nicChange(t, func() {
			for i, r := range a.Routers {
				if err := lan.Attach(r, "eth2", fmt.Sprintf("10.0.2.%d/24", 2+i)); err != nil {
					t.Fatal(err)
				}
			}
		}, func(i int) string {
			return a.env[i] + fmt.Sprintf("export ETH2_IP=\"10.0.2.%d\"\nexport ETH2_MASK=\"255.255.255.0\"\n", 2+i)
		}, func() error { return forwarding(m, "eth2", "1") })
	})
	t.Run("nic detached", func(t *testing.T) {
		nicChange(t, func() {
			for _, r := range a.Routers {
				if _, err := lab.Run(context.Background(), r, "ip", "link", "del", "eth2"); err != nil {
					t.Fatal(err)
				}
			}
		}, func(i int) string {
			env := a.env[i]
			return env[:strings.Index(env, "export ETH2_IP=")]
		}, func() error {
			out, err := m.ReadFile(router4.SysctlFile)
			if err != nil || strings.Contains(string(out), "eth2") {
				return fmt.Errorf("one-router4 still configures eth2 (%v): %s", err, out)
			}
			return nil
		})
	})
}

// forwarding checks net.ipv4.conf.<nic>.forwarding on r.
func forwarding(r *lab.Router, nic, want string) error {
	out, err := lab.Run(context.Background(), r, "sysctl", "-n", "net.ipv4.conf."+nic+".forwarding")
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(out); got != want {
		return &stateErr{r.Role + ": " + nic + " forwarding is " + got + ", want " + want}
	}
	return nil
}
