package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// stepFailover shows the master's VIPs, loses the master node (its links go
// down and its keepalived is killed, as a crashed node), and shows the
// backup taking over with its services: the VM's traffic resumes through the
// new master (the time is measured from the loss to the first answer the VM
// gets), and a long-lived TCP connection through NAT survives (conntrackd).
// Then the old master comes back and stays backup: never two masters.
func stepFailover(w *world, r *report) error {
	fmt.Println("== failover: the master node is lost, the backup takes over with its services")
	m, err := w.master()
	if err != nil {
		return r.add("failover", "a master to lose", 0, err)
	}
	b := w.ha.Other(m)
	enabled, err := w.enabled()
	if err != nil {
		return r.add("context", "scripts/lab/demo.env parses", 0, err)
	}
	fmt.Printf("           master %s: %s", m.Role, addrLine(m))

	// A long-lived connection from the VM to the internet host through NAT,
	// a round trip every 100 ms across the failover.
	hold, err := w.lab.Start(w.vm, "hold", "connected", lab.Bin("nettool"), "hold", lab.InetAddr+":7000",
		"--interval", "100ms", "--duration", "9s", "--timeout", "8s")
	if err != nil {
		return r.add("failover", "a long-lived TCP connection VM -> internet host", 0, err)
	}
	watch, err := lab.StartWatch(w.vm, lab.InetAddr+":7000", 20*time.Millisecond)
	if err != nil {
		return r.add("failover", "UDP probes from the VM every 20 ms", 0, err)
	}
	defer watch.Stop()
	if _, err := watch.FirstSince(time.Now(), "name=internet-host", 5*time.Second); err != nil {
		return r.add("failover", "VM -> internet before the loss", 0, err)
	}

	var lost, down time.Time
	holding := false
	errs := []error{
		r.do("conntrack", b.Role+" (backup) already knows the connection: conntrackd synced it", func() error {
			return lab.Eventually(5*time.Second, 100*time.Millisecond, func() error {
				out, err := lab.Run(context.Background(), b, "conntrack", "-L", "-p", "tcp", "--dport", "7000")
				if err != nil || !strings.Contains(out, "src="+lab.VMIP(0)) || !strings.Contains(out, "dst="+lab.PublicVIP) {
					return fmt.Errorf("not in %s's table: %v %s", b.Role, err, out)
				}
				return nil
			})
		}),
		r.do("failover", m.Role+" lost: links down, keepalived killed", func() error {
			// Only probes sent once the links are down count: earlier
			// ones may still pass the old master.
			lost = time.Now()
			holding = !hold.Exited()
			if err := m.Links(false, "eth0", "eth1"); err != nil {
				return err
			}
			down = time.Now()
			if m.Kill("keepalived") == 0 {
				return fmt.Errorf("%s: no keepalived to kill", m.Role)
			}
			return nil
		}),
		r.measure("failover", "VM -> internet flows again through "+b.Role+" (time from the loss)", func() (time.Duration, error) {
			a, err := watch.FirstSince(down, "name=internet-host", 20*time.Second)
			if err != nil {
				return 0, err
			}
			return a.Received.Sub(lost), nil
		}),
	}
	errs = append(errs, r.all([]checkFunc{
		{"failover", b.Role + " holds both VIPs", func() error {
			if !lab.HasAddr(b, "eth1", lab.PrivateVIP) || !lab.HasAddr(b, "eth0", lab.PublicVIP) {
				return fmt.Errorf("%s: %s%s", b.Role, addrLine(b), logTails(b))
			}
			fmt.Printf("           new master %s: %s", b.Role, addrLine(b))
			return nil
		}},
		{"failover", b.Role + " runs the enabled services: " + strings.Join(enabled, " "), func() error {
			return serving(b, enabled, true)
		}},
		{"failover", "the lost " + m.Role + " stopped its services by itself", func() error {
			return serving(m, enabled, false)
		}},
		{"failover", "internet -> 203.0.113.1:8080 reaches the VM through " + b.Role, func() error {
			return answer(w.inet, "tcp", lab.PublicVIP+":8080", "name=vm")
		}},
		{"conntrack", "the long-lived TCP connection through NAT survived", func() error {
			if err := hold.Wait(); err != nil {
				return fmt.Errorf("%v: %s", err, lastLine(hold.Output()))
			}
			if !holding {
				return fmt.Errorf("the connection ended before %s was lost: it proves nothing", m.Role)
			}
			trips := 0
			for _, l := range strings.Split(hold.Output(), "\n") {
				if strings.HasPrefix(l, "ok ") {
					trips++
				}
			}
			fmt.Printf("           %d round trips, none lost; the connection was open when %s was lost\n", trips, m.Role)
			return nil
		}},
		{"failover", m.Role + " returns: it stays backup, one VIP holder for 5 s", func() error {
			if err := m.Return(); err != nil {
				return err
			}
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				if hs := w.ha.Holders(); len(hs) != 1 || hs[0] != b {
					return fmt.Errorf("%d routers hold %s", len(hs), lab.PrivateVIP)
				}
				time.Sleep(100 * time.Millisecond)
			}
			return serving(m, enabled, false)
		}},
	}))
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// logTails is the end of a router's one-failover and keepalived logs.
func logTails(r *lab.Router) string {
	return r.TailFile(lab.FailoverLogFile, 15) + r.TailFile("/var/log/keepalived.log", 15)
}
