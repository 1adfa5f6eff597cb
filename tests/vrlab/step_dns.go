package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// stepDNS shows DNS as one-failover runs it on the master (after the
// failover step: the new master): the internet host gets a nameserver of
// its own (dnsmasq with one public-looking record), the VM resolves through
// the private VIP a public name via the forwarder and the router's own
// ep0.eth0.vr; the public side is refused; the backup runs no unbound; stop
// and start again through OpenRC.
func stepDNS(w *world, r *report) error {
	fmt.Println("== DNS (unbound) on the master, through the private VIP")
	m, err := w.master()
	if err != nil {
		return r.add("dns", "a master to ask", 0, err)
	}
	b := w.ha.Other(m)
	ask := func(h lab.Host, server, name string, want ...string) func() error {
		return func() error { return dnsAnswer(h, server, name, want...) }
	}
	return r.all([]checkFunc{
		{"dns", "internet host runs a nameserver (dnsmasq): www.example.com = 198.51.100.80", func() error {
			_, err := w.lab.Start(w.inet, "dnsmasq", "started", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
				"--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=203.0.113.100", "--port=53", "--user=root",
				"--pid-file="+filepath.Join(w.lab.Dir, "dnsmasq.pid"), "--log-facility=-",
				"--host-record=www.example.com,198.51.100.80")
			return err
		}},
		{"dns", "VM: dig @10.0.0.1 ep0.eth0.vr = 203.0.113.1 (the router's own name)", ask(w.vm, "10.0.0.1", "ep0.eth0.vr", "203.0.113.1")},
		{"dns", "VM: dig @10.0.0.1 www.example.com = 198.51.100.80 (via the forwarder)", ask(w.vm, "10.0.0.1", "www.example.com", "198.51.100.80")},
		{"dns", "internet host -> 10.0.0.1: REFUSED (not an allowed network)", func() error {
			// A route for this check only: the other steps keep the
			// internet host without a way into the private network.
			if _, err := lab.Run(context.Background(), w.inet, "ip", "route", "add", "10.0.0.0/24", "via", lab.PublicVIP); err != nil {
				return err
			}
			defer lab.Run(context.Background(), w.inet, "ip", "route", "del", "10.0.0.0/24", "via", lab.PublicVIP)
			return dnsAnswer(w.inet, "10.0.0.1", "www.example.com", "status: REFUSED")
		}},
		{"dns", "internet host -> 203.0.113.1: no DNS service on the public VIP", func() error {
			if out, err := dig(w.inet, lab.PublicVIP, "www.example.com"); err == nil {
				return fmt.Errorf("the public address answered:\n%s", out)
			}
			return nil
		}},
		{"dns", m.Role + ": one-dns status: unbound runs with the context's configuration", func() error {
			_, err := lab.Run(context.Background(), m, "one-dns", "status")
			return err
		}},
		{"dns", b.Role + " (backup): unbound is not running", func() error {
			if st := b.ServiceState("unbound"); st == "started" {
				return fmt.Errorf("unbound is %s on the backup", st)
			}
			return nil
		}},
		{"dns", m.Role + ": rc-service one-dns stop: unbound stopped, nothing answers", func() error {
			if _, err := m.RC("one-dns", "stop"); err != nil {
				return err
			}
			if out, err := dig(w.vm, "10.0.0.1", "ep0.eth0.vr"); err == nil {
				return fmt.Errorf("still answering:\n%s", out)
			}
			return nil
		}},
		{"dns", m.Role + ": rc-service one-dns start again: the VM resolves ep0.eth0.vr", func() error {
			if _, err := m.RC("one-dns", "start"); err != nil {
				return err
			}
			return dnsAnswer(w.vm, "10.0.0.1", "ep0.eth0.vr", "203.0.113.1")
		}},
	})
}

// dig asks server for name's address from h (2 s, one try).
func dig(h lab.Host, server, name string) (string, error) {
	return lab.Run(context.Background(), h, "dig", "+time=2", "+tries=1", "+noall", "+comments", "+answer", "@"+server, name, "A")
}

// dnsAnswer retries dig until its output holds every want.
func dnsAnswer(h lab.Host, server, name string, want ...string) error {
	return lab.Eventually(5*time.Second, 200*time.Millisecond, func() error {
		out, err := dig(h, server, name)
		if err != nil {
			return err
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				return fmt.Errorf("answer lacks %q:\n%s", w, out)
			}
		}
		return nil
	})
}
