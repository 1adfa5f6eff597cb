package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// natContext is a router context with n port forwards.
func natContext(n int) string {
	var b strings.Builder
	b.WriteString("export ETH0_IP=\"203.0.113.1\"\nexport ETH0_MASK=\"255.255.255.0\"\nexport ETH1_IP=\"10.0.0.1\"\nexport ETH1_MASK=\"255.255.255.0\"\n")
	b.WriteString("export ONEAPP_VNF_NAT4_ENABLED=\"YES\"\nexport ONEAPP_VNF_NAT4_INTERFACES_OUT=\"eth0\"\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "export ONEAPP_VNF_NAT4_PORT_FWD%d=\"<ETH0_EP0>:%d:10.0.%d.%d:80\"\n", i, 10000+i, i/250, 2+i%250)
	}
	return b.String()
}

// benchNAT4 measures `one-nat4 start` (the whole process, as OpenRC runs it)
// with 10 and 10,000 port forwards, from an empty nat table, and checks with
// `nft monitor` that re-applying an unchanged context writes nothing.
func benchNAT4(b *bench) error {
	ns, err := b.lab.Host("nat")
	if err != nil {
		return err
	}
	if err := lab.Sh(context.Background(), ns, "ip link add eth0 type veth peer name eth1 && ip link set eth0 up && ip link set eth1 up && ip addr add 203.0.113.1/24 dev eth0 && ip addr add 10.0.0.1/24 dev eth1"); err != nil {
		return err
	}
	run := func(env string, verb string) func() error {
		return func() error {
			_, err := lab.Run(context.Background(), ns, lab.Bin("one-nat4"), "--env-file", env, verb)
			return err
		}
	}
	for _, n := range []int{10, 10000} {
		env := filepath.Join(b.lab.Dir, fmt.Sprintf("nat%d.env", n))
		if err := os.WriteFile(env, []byte(natContext(n)), 0o600); err != nil {
			return err
		}
		target := map[int]time.Duration{10: 30 * time.Millisecond, 10000: 250 * time.Millisecond}[n]
		// Fresh apply: stop (not timed), then start.
		var ds []time.Duration
		for i := 0; i < b.runs; i++ {
			if err := run(env, "stop")(); err != nil {
				return err
			}
			med, _, _, err := timeRuns(1, run(env, "start"))
			if err != nil {
				return err
			}
			ds = append(ds, med)
		}
		med, lo, hi := stats(ds)
		b.add(fmt.Sprintf("one-nat4 start, %d port forwards, empty table (whole process)", n), "<= "+ms(target), spread(med, lo, hi), med <= target)
		// The floor: iptables-restore alone with the same payload.
		payload, err := lab.Run(context.Background(), ns, lab.Bin("one-nat4"), "--env-file", env, "render", "--only", "iptables:nat")
		if err != nil {
			return err
		}
		pfile := env + ".restore"
		if err := os.WriteFile(pfile, []byte(payload), 0o600); err != nil {
			return err
		}
		ds = ds[:0]
		for i := 0; i < b.runs; i++ {
			if err := run(env, "stop")(); err != nil {
				return err
			}
			d, _, _, err := timeRuns(1, func() error {
				_, err := lab.Run(context.Background(), ns, "sh", "-c", "iptables-restore --noflush -w 5 < "+pfile)
				return err
			})
			if err != nil {
				return err
			}
			ds = append(ds, d)
		}
		med, lo, hi = stats(ds)
		b.add(fmt.Sprintf("  floor: iptables-restore alone of that payload (%d rules)", 2*n+1), "-", spread(med, lo, hi), true)
		med, lo, hi, err = timeRuns(b.runs, run(env, "start"))
		if err != nil {
			return err
		}
		b.add(fmt.Sprintf("one-nat4 start, %d port forwards, unchanged (whole process)", n), "-", spread(med, lo, hi), true)

		// No kernel change on an unchanged re-apply: nft monitor sees no new generation.
		mon, err := b.lab.Start(ns, "nft monitor", "", "stdbuf", "-oL", "nft", "monitor")
		if err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		if err := run(env, "start")(); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		mon.Stop()
		gens := strings.Count(mon.Output(), "new generation")
		b.add(fmt.Sprintf("kernel ruleset generations on re-apply, %d forwards", n), "0", fmt.Sprint(gens), gens == 0)
	}
	return run(filepath.Join(b.lab.Dir, "nat10.env"), "stop")()
}
