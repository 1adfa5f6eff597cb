package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// haBenchShared is the shared context of the HA figures: the demo's
// services (Router4, NAT4 with a port forward, DNS on the private side).
const haBenchShared = `export VROUTER_ID="1"
export VROUTER_KEEPALIVED_ID="10"
export ONEAPP_VNF_ROUTER4_ENABLED="YES"
export ONEAPP_VNF_NAT4_ENABLED="YES"
export ONEAPP_VNF_NAT4_INTERFACES_OUT="eth0"
export ONEAPP_VNF_NAT4_PORT_FWD0="<ETH0_VIP0>:8080:10.0.0.12:80"
export ONEAPP_VNF_DNS_ENABLED="YES"
export ONEAPP_VNF_DNS_INTERFACES="eth1"
export ONEAPP_VNF_DNS_NAMESERVERS="203.0.113.100"
`

var haBenchServices = []string{"one-failover", "one-router4", "one-nat4", "one-dns"}

// benchHA measures failover in the HA lab (two router instances under
// OpenRC, a VM, the internet host): from the master node's loss (links
// down, keepalived killed) to the VM's traffic flowing through the new
// master, with the default advertisement interval and with 0.1 s; from the
// VIP arriving on the new master (ip monitor on the router) to one-failover
// having applied its enabled services (its log); and the failovers caused by
// reconfigures that keep the VRRP layout.
func benchHA(b *bench) error {
	h, err := b.lab.HA(2, 1)
	if err != nil {
		return err
	}
	if _, err := b.lab.Start(h.Inet, "ha inet server", "ready", lab.Bin("nettool"), "serve", "--udp", ":7000", "--tcp", ":7000", "--name", "inet"); err != nil {
		return err
	}
	boot := func(extra string) error {
		for i, r := range h.Routers {
			if err := r.Recontext(h.Context(i, haBenchShared+extra), haBenchServices...); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range h.Routers {
		if err := r.Install(haBenchServices...); err != nil {
			return err
		}
	}
	if err := boot(""); err != nil {
		return err
	}
	watch, err := lab.StartWatch(h.VMs[0], lab.InetAddr+":7000", 10*time.Millisecond)
	if err != nil {
		return err
	}
	defer watch.Stop()

	var applied []time.Duration
	for _, c := range []struct {
		interval, extra string
		target          time.Duration
	}{
		{"1 s (default)", "", 4 * time.Second},
		{"0.1 s", "export ONEAPP_VNF_KEEPALIVED_INTERVAL=\"0.1\"\n", 500 * time.Millisecond},
	} {
		if c.extra != "" {
			// A new VRRP version: keepalived restarts, a new election.
			if err := boot(c.extra); err != nil {
				return err
			}
			// one-failover reads the new context once it has settled (1 s).
			time.Sleep(2 * time.Second)
		}
		var traffic []time.Duration
		for i := 0; i < b.runs; i++ {
			t, a, err := haFailoverRun(b, h, watch)
			if err != nil {
				return fmt.Errorf("failover run %d (interval %s): %w", i+1, c.interval, err)
			}
			traffic, applied = append(traffic, t), append(applied, a)
		}
		med, lo, hi := stats(traffic)
		b.add("master node lost -> VM traffic through the new master, advert "+c.interval, "<= "+ms(c.target), spread(med, lo, hi), med <= c.target)
		if c.extra == "" {
			// With the default interval's layout: reconfigures that keep it.
			moves, restarts, flips, err := haReconfigure(b, h, boot)
			if err != nil {
				return err
			}
			b.add(fmt.Sprintf("reconfigures keeping the VRRP layout (%d) -> failovers", b.runs), "0",
				fmt.Sprintf("%d (VIP moves %d, keepalived restarts %d, one-failover role changes %d)", moves+restarts+flips, moves, restarts, flips), moves+restarts+flips == 0)
		}
	}
	med, lo, hi := stats(applied)
	b.add("VIP on the new master -> its enabled services applied (router4 nat4 dns)", "<= "+ms(200*time.Millisecond), spread(med, lo, hi), med <= 200*time.Millisecond)
	return nil
}

// haFailoverRun loses the current master and returns the time from the loss
// to the VM's first answer through the new master, and the time from the
// VIP arriving on the new master to one-failover having applied its
// services. The old master then returns as backup.
func haFailoverRun(b *bench, h *lab.HA, watch *lab.Watch) (traffic, applied time.Duration, err error) {
	m, err := h.Master(20 * time.Second)
	if err != nil {
		return 0, 0, err
	}
	nb := h.Other(m)
	if err := haWaitBackup(nb, 20*time.Second); err != nil {
		return 0, 0, err
	}
	mon, err := b.lab.Start(nb, "ip monitor", "", "ip", "-ts", "monitor", "address")
	if err != nil {
		return 0, 0, err
	}
	defer mon.Stop()
	logFrom := len(haReadLog(nb))
	time.Sleep(300 * time.Millisecond) // ip monitor listening
	// The loss starts when the links begin to go down; only probes sent
	// once they are down count (earlier ones may still pass the old
	// master), so the figure errs long by the command's few milliseconds.
	lost := time.Now()
	if err := m.Links(false, "eth0", "eth1"); err != nil {
		return 0, 0, err
	}
	down := time.Now()
	if m.Kill("keepalived") == 0 {
		return 0, 0, fmt.Errorf("%s: no keepalived to kill", m.Role)
	}
	a, err := watch.FirstSince(down, "name=inet", 20*time.Second)
	if err != nil {
		return 0, 0, err
	}
	var vipAt, appliedAt time.Time
	err = lab.Eventually(20*time.Second, 50*time.Millisecond, func() error {
		vipAt, appliedAt = haVIPAdded(mon.Output()), haApplied(haReadLog(nb)[logFrom:])
		if vipAt.IsZero() || appliedAt.IsZero() {
			return fmt.Errorf("%s: VIP added %v, services applied %v", nb.Role, vipAt, appliedAt)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	fmt.Printf("    %s -> %s: VIP %s after the loss, services applied %s after the VIP, traffic %s after the loss\n",
		m.Role, nb.Role, ms(vipAt.Sub(lost)), ms(appliedAt.Sub(vipAt)), ms(a.Received.Sub(lost)))
	if os.Getenv("VRBENCH_HA_DEBUG") != "" {
		fmt.Printf("%s\n--- ip monitor:\n%s\n", haReadLog(nb)[logFrom:], mon.Output())
	}
	if err := m.Return(); err != nil {
		return 0, 0, err
	}
	return a.Received.Sub(lost), appliedAt.Sub(vipAt), nil
}

// haWaitBackup waits until r's keepalived is in BACKUP (it last entered
// that state, it serves nothing), ready to take over.
func haWaitBackup(r *lab.Router, timeout time.Duration) error {
	return lab.Eventually(timeout, 100*time.Millisecond, func() error {
		k, _ := r.ReadFile("/var/log/keepalived.log")
		last := ""
		for _, l := range strings.Split(string(k), "\n") {
			if i := strings.Index(l, "Entering "); i >= 0 {
				last = l[i:]
			}
		}
		if !strings.HasPrefix(last, "Entering BACKUP STATE") {
			return fmt.Errorf("%s: keepalived last said %q", r.Role, last)
		}
		if st := r.ServiceState("one-nat4"); st != "stopped" {
			return fmt.Errorf("%s: one-nat4 %s", r.Role, st)
		}
		return nil
	})
}

func haReadLog(r *lab.Router) string {
	b, _ := r.ReadFile("/var/log/one-appliance/one-failover.log")
	return string(b)
}

// haVIPAdded is when `ip -ts monitor address` first showed a VIP added.
func haVIPAdded(out string) time.Time {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "[") || strings.Contains(l, "Deleted") {
			continue
		}
		if !strings.Contains(l, "inet "+lab.PrivateVIP+"/") && !strings.Contains(l, "inet "+lab.PublicVIP+"/") {
			continue
		}
		end := strings.IndexByte(l, ']')
		if t, err := time.ParseInLocation("2006-01-02T15:04:05.000000", l[1:end], time.Local); err == nil {
			return t
		}
	}
	return time.Time{}
}

// haApplied is when one-failover logged that it applied a serve.
func haApplied(log string) time.Time {
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "msg=applied") || !strings.Contains(l, "action=serve") {
			continue
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time=")); err == nil {
			return t
		}
	}
	return time.Time{}
}

// haReconfigure recontextualizes both routers b.runs times with changes
// that keep the VRRP layout (a port forward, a second private VIP) and
// counts VIP moves, keepalived restarts and one-failover role changes.
func haReconfigure(b *bench, h *lab.HA, boot func(string) error) (moves, restarts, flips int, err error) {
	m, err := h.Master(20 * time.Second)
	if err != nil {
		return 0, 0, 0, err
	}
	if err := haWaitBackup(h.Other(m), 20*time.Second); err != nil {
		return 0, 0, 0, err
	}
	pids := map[*lab.Router][]int{}
	logs := map[*lab.Router]int{}
	for _, r := range h.Routers {
		pids[r], logs[r] = r.PIDs("keepalived"), len(haReadLog(r))
	}
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			if hs := h.Holders(); len(hs) != 1 || hs[0] != m {
				n++
			}
			select {
			case <-stop:
				done <- n
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	for i := 0; i < b.runs; i++ {
		extra := fmt.Sprintf("export ONEAPP_VNF_NAT4_PORT_FWD1=\"<ETH0_VIP0>:%d:10.0.0.12:80\"\nexport ONEAPP_VROUTER_ETH1_VIP1=\"10.0.0.%d\"\n", 9000+i, 100+i)
		if err := boot(extra); err != nil {
			close(stop)
			<-done
			return 0, 0, 0, err
		}
		time.Sleep(1500 * time.Millisecond) // one-failover settles, keepalived adverts
	}
	time.Sleep(2 * time.Second)
	close(stop)
	moves = <-done
	for _, r := range h.Routers {
		if !slices.Equal(r.PIDs("keepalived"), pids[r]) {
			restarts++
		}
		log := haReadLog(r)[logs[r]:]
		flips += strings.Count(log, "action=quiesce") + strings.Count(log, "action=serve")
	}
	return moves, restarts, flips, nil
}
