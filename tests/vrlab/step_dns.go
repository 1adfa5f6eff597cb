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

// stepDNS installs one-dns in the router instance, gives the internet host
// a nameserver of its own (dnsmasq with one public-looking record), and
// shows the VM resolving through the router: a public name via the
// forwarder, the router's own ep0.eth0.vr; the public side refused; stop
// and start again through OpenRC. DNS is left running for the steps after.
func stepDNS(w *world, r *report) error {
	fmt.Println("== DNS (unbound) through OpenRC (context: scripts/lab/demo.env)")
	ctxFile, err := os.ReadFile(filepath.Join(lab.RepoRoot(), "scripts", "lab", "demo.env"))
	if err != nil {
		return err
	}
	ask := func(h lab.Host, server, name string, want ...string) func() error {
		return func() error { return dnsAnswer(h, server, name, want...) }
	}
	steps := []struct {
		feature, what string
		f             func() error
	}{
		{"dns", "internet host runs a nameserver (dnsmasq): www.example.com = 198.51.100.80", func() error {
			_, err := w.lab.Start(w.inet, "dnsmasq", "started", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
				"--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=203.0.113.100", "--port=53", "--user=root",
				"--pid-file="+filepath.Join(w.lab.Dir, "dnsmasq.pid"), "--log-facility=-",
				"--host-record=www.example.com,198.51.100.80")
			return err
		}},
		{"install", "one-dns install (binary, one-dns and unbound OpenRC scripts)", func() error {
			return w.router.Install("one-dns")
		}},
		{"context", "/run/one-context/one_env written from scripts/lab/demo.env", func() error {
			return w.router.WriteFile("/run/one-context/one_env", ctxFile, 0o400)
		}},
		{"dns", "rc-service one-dns start (unbound.conf checked, unbound started)", func() error {
			_, err := w.router.RC("one-dns", "start")
			return err
		}},
		{"dns", "VM: dig @10.0.0.1 ep0.eth0.vr = 203.0.113.1 (the router's own name)", ask(w.vm, "10.0.0.1", "ep0.eth0.vr", "203.0.113.1")},
		{"dns", "VM: dig @10.0.0.1 www.example.com = 198.51.100.80 (via the forwarder)", ask(w.vm, "10.0.0.1", "www.example.com", "198.51.100.80")},
		{"dns", "internet host -> 10.0.0.1: REFUSED (not an allowed network)", func() error {
			// A route for this check only: the other steps keep the
			// internet host without a way into the private network.
			if _, err := lab.Run(context.Background(), w.inet, "ip", "route", "add", "10.0.0.0/24", "via", "203.0.113.1"); err != nil {
				return err
			}
			defer lab.Run(context.Background(), w.inet, "ip", "route", "del", "10.0.0.0/24", "via", "203.0.113.1")
			return dnsAnswer(w.inet, "10.0.0.1", "www.example.com", "status: REFUSED")
		}},
		{"dns", "internet host -> 203.0.113.1: no DNS service on the public address", func() error {
			if out, err := dig(w.inet, "203.0.113.1", "www.example.com"); err == nil {
				return fmt.Errorf("the public address answered:\n%s", out)
			}
			return nil
		}},
		{"dns", "one-dns status: unbound runs with the context's configuration", func() error {
			_, err := lab.Run(context.Background(), w.router, "one-dns", "status")
			return err
		}},
		{"dns", "rc-service one-dns stop: unbound stopped, nothing answers", func() error {
			if _, err := w.router.RC("one-dns", "stop"); err != nil {
				return err
			}
			if out, err := dig(w.vm, "10.0.0.1", "ep0.eth0.vr"); err == nil {
				return fmt.Errorf("still answering:\n%s", out)
			}
			return nil
		}},
		{"dns", "rc-service one-dns start again: the VM resolves ep0.eth0.vr", func() error {
			if _, err := w.router.RC("one-dns", "start"); err != nil {
				return err
			}
			return dnsAnswer(w.vm, "10.0.0.1", "ep0.eth0.vr", "203.0.113.1")
		}},
	}
	var first error
	for _, s := range steps {
		if err := r.do(s.feature, s.what, s.f); err != nil && first == nil {
			first = err
		}
	}
	return first
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
