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

// dnsBenchContext: the recursor on eth1, the internet host's dnsmasq as
// forwarder. The router has no default route: nothing leaves the lab.
const dnsBenchContext = `export ETH0_IP="203.0.113.1"
export ETH0_MASK="255.255.255.0"
export ETH1_IP="10.0.0.1"
export ETH1_MASK="255.255.255.0"
export ONEAPP_VNF_DNS_ENABLED="YES"
export ONEAPP_VNF_DNS_INTERFACES="eth1"
export ONEAPP_VNF_DNS_NAMESERVERS="203.0.113.100"
`

// benchDNS measures one-dns through OpenRC in a router instance: from
// stopped to answering (render, unbound-checkconf, supervised start, probe),
// an unchanged re-apply (which must leave unbound alone), a reload with a
// new setting, and the answer rate seen by a VM for local names and for a
// forwarded (then cached) name, with dig's batch mode (one process, queries
// one after the other).
func benchDNS(b *bench) error {
	l := b.lab
	inet, err := l.Host("dnsinet")
	if err != nil {
		return err
	}
	vm, err := l.Host("dnsvm")
	if err != nil {
		return err
	}
	r, err := l.Router("dnsvr")
	if err != nil {
		return err
	}
	for _, f := range []func() error{
		func() error { return l.Link(inet, "eth0", r, "eth0") },
		func() error { return lab.Addr(inet, "eth0", "203.0.113.100/24") },
		func() error { return lab.Addr(r, "eth0", "203.0.113.1/24") },
		func() error { return l.Link(vm, "eth0", r, "eth1") },
		func() error { return lab.Addr(vm, "eth0", "10.0.0.12/24") },
		func() error { return lab.Addr(r, "eth1", "10.0.0.1/24") },
		func() error { return r.Install("one-dns") },
		func() error { return r.WriteFile("/run/one-context/one_env", []byte(dnsBenchContext), 0o400) },
		func() error {
			_, err := l.Start(inet, "dnsmasq", "started", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
				"--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=203.0.113.100", "--port=53", "--user=root",
				"--pid-file="+filepath.Join(l.Dir, "dnsmasq-bench.pid"), "--log-facility=-",
				"--host-record=www.example.com,198.51.100.80,300", "--host-record=ttl0.example.com,198.51.100.81,0")
			return err
		},
	} {
		if err := f(); err != nil {
			return err
		}
	}
	rc := func(verb string) func() error {
		return func() error { _, err := r.RC("one-dns", verb); return err }
	}
	answers := func() error {
		out, err := lab.Run(context.Background(), vm, "dig", "+short", "+time=2", "+tries=1", "@10.0.0.1", "ep0.eth0.vr")
		if err == nil && strings.TrimSpace(out) != "203.0.113.1" {
			err = fmt.Errorf("ep0.eth0.vr = %q", out)
		}
		return err
	}

	var ds []time.Duration
	for i := 0; i < b.runs; i++ {
		if err := rc("stop")(); err != nil {
			return err
		}
		med, _, _, err := timeRuns(1, func() error {
			if err := rc("start")(); err != nil {
				return err
			}
			return answers()
		})
		if err != nil {
			return err
		}
		ds = append(ds, med)
	}
	med, lo, hi := stats(ds)
	b.add("rc-service one-dns start, stopped -> the VM gets an answer", "<= "+ms(time.Second), spread(med, lo, hi), med <= time.Second)

	pid := func() string {
		p, _ := r.ReadFile("/run/openrc/options/unbound/child_pid")
		return strings.TrimSpace(string(p))
	}
	before := pid()
	med, lo, hi, err = timeRuns(b.runs, func() error { _, err := r.RC("unbound", "status"); return err })
	if err != nil {
		return err
	}
	b.add("  floor: rc-service unbound status alone", "-", spread(med, lo, hi), true)
	med, lo, hi, err = timeRuns(b.runs, rc("reload"))
	if err != nil {
		return err
	}
	b.add("rc-service one-dns reload, unchanged context (unbound untouched)", "<= "+ms(250*time.Millisecond), spread(med, lo, hi), med <= 250*time.Millisecond)
	b.add("  unbound restarts during unchanged reloads", "0", fmt.Sprint(map[bool]int{true: 0, false: 1}[pid() == before]), pid() == before)

	// A reloadable change each run (the cache TTL): SIGHUP, same process.
	ds = ds[:0]
	for i := 0; i < b.runs; i++ {
		env := dnsBenchContext + fmt.Sprintf("export ONEAPP_VNF_DNS_MAX_CACHE_TTL=\"%d\"\n", 600+i)
		if err := r.WriteFile("/run/one-context/one_env", []byte(env), 0o400); err != nil {
			return err
		}
		d, _, _, err := timeRuns(1, rc("reload"))
		if err != nil {
			return err
		}
		ds = append(ds, d)
	}
	med, lo, hi = stats(ds)
	b.add("rc-service one-dns reload, changed setting (SIGHUP, answering again)", "-", spread(med, lo, hi), true)

	for _, q := range []struct{ what, name string }{
		{"local name ep0.eth0.vr", "ep0.eth0.vr"},
		{"forwarded name, TTL 300 (cached after the first)", "www.example.com"},
		{"forwarded name, TTL 0 (each query goes upstream)", "ttl0.example.com"},
	} {
		const n = 2000
		batch := filepath.Join(l.Dir, "dig-batch")
		if err := os.WriteFile(batch, []byte(strings.Repeat(q.name+" A\n", n)), 0o644); err != nil {
			return err
		}
		med, lo, hi, err := timeRuns(3, func() error {
			out, err := lab.Run(context.Background(), vm, "dig", "+tries=1", "+time=2", "+noall", "+answer", "@10.0.0.1", "-f", batch)
			if err == nil && strings.Count(out, "\tA\t") != n {
				err = fmt.Errorf("%d answers of %d", strings.Count(out, "\tA\t"), n)
			}
			return err
		})
		if err != nil {
			return err
		}
		rate := float64(n) / med.Seconds()
		b.add(fmt.Sprintf("VM answers/s, %s, %d sequential queries", q.what, n), "-",
			fmt.Sprintf("%.0f/s (%.0f µs each; batch min %s, max %s)", rate, float64(med.Microseconds())/n, ms(lo), ms(hi)), true)
	}
	return rc("stop")()
}
