package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// The VM that has a public address in the demo's OneGate documents
// (scripts/lab/onegate), and its documents.
const (
	webAddr    = "10.0.0.14"
	webPublic  = "203.0.113.20"
	sdnatRate  = 2 * time.Second // ONEAPP_VNF_SDNAT4_REFRESH_RATE
	webNoAlias = `{"VM": {"ID": "20", "NAME": "web", "STATE": "3", "LCM_STATE": "3", "USER_TEMPLATE": {},
  "TEMPLATE": {"CONTEXT": {"NETWORK": "YES"},
    "NIC": [{"NIC_ID": "0", "NAME": "NIC0", "NETWORK": "private", "NETWORK_ID": "1", "IP": "10.0.0.14", "MAC": "02:00:0a:00:00:0e"}]}}}`
)

// sdnatDocs are the documents of scripts/lab/onegate the step gives OneGate.
var sdnatDocs = []string{"vnet-0", "vnet-1", "vm-20"}

// stepSDNAT4 shows SDNAT4 as one-failover runs it on the master (the new
// one, after the failover step): OneGate (the simulator on the internet
// host, given the demo's networks from scripts/lab/onegate) reports that
// VM 20, "web" (a second VM, 10.0.0.14), has the EXTERNAL alias
// 203.0.113.20; the master maps it both ways within a few refreshes, the
// internet reaches web on its public address (TCP, UDP, ICMP),
// web's own traffic leaves with it while the first VM still leaves with the
// router's (NAT4), the first VM reaches web's public address (hairpin), a
// OneGate outage changes nothing, and detaching and re-attaching the alias
// in OneGate removes and restores the mapping within a few refreshes. The
// simulator's standard documents are back when it ends.
func stepSDNAT4(w *world, r *report) error {
	fmt.Println("== SDNAT4 on the master: public addresses from OneGate (the simulator), mapped 1:1")
	m, err := w.master()
	if err != nil {
		return r.add("sdnat4", "a master to map", 0, err)
	}
	b := w.ha.Other(m)
	gate := w.gate
	var web *lab.Namespace
	mapped := func(rt *lab.Router) bool { return strings.Contains(sdnatAddrs(rt), webPublic+"/32") }
	live := func(want bool) error {
		return lab.Eventually(3*sdnatRate, 50*time.Millisecond, func() error {
			if mapped(m) != want {
				return fmt.Errorf("%s on %s's lo: %t, want %t", webPublic, m.Role, !want, want)
			}
			return nil
		})
	}
	defer func() {
		for _, name := range sdnatDocs {
			if doc, err := os.ReadFile(filepath.Join(sim.Fixtures(), name+".json")); err == nil {
				_ = gate.WriteDocument(name, doc)
			}
		}
	}()
	errs := r.all([]checkFunc{
		{"sdnat4", "OneGate describes the demo's networks: web (VM 20) has the EXTERNAL alias " + webPublic, func() error {
			for _, name := range sdnatDocs {
				doc, err := fixture(name)
				if err != nil {
					return err
				}
				if err := gate.WriteDocument(name, doc); err != nil {
					return err
				}
			}
			return nil
		}},
		{"sdnat4", "a second VM, web (" + webAddr + "), serving TCP/UDP 80", func() error {
			if web, err = w.lab.Host("web"); err != nil {
				return err
			}
			if err := w.ha.Private.Attach(web, "eth0", webAddr+"/24"); err != nil {
				return err
			}
			if _, err := lab.Run(context.Background(), web, "ip", "route", "add", "default", "via", lab.PrivateVIP); err != nil {
				return err
			}
			// Counts the echo requests web receives (the router must not
			// answer them for it).
			if _, err := lab.Run(context.Background(), web, "iptables", "-A", "INPUT", "-p", "icmp", "--icmp-type", "echo-request", "-j", "ACCEPT"); err != nil {
				return err
			}
			_, err := w.lab.Start(web, "web server", "ready", lab.Bin("nettool"), "serve", "--tcp", ":80", "--udp", ":80", "--name", "web")
			return err
		}},
		{"sdnat4", m.Role + " maps " + webPublic + " -> " + webAddr + " within 3 refreshes (lo label SDNAT4, DNAT4, SNAT4)", func() error {
			if err := live(true); err != nil {
				return err
			}
			fmt.Printf("           %s lo: %s", m.Role, sdnatAddrs(m))
			out, err := lab.Run(context.Background(), m, "iptables", "-t", "nat", "-S", "DNAT4")
			if err != nil || !strings.Contains(out, "-d "+webPublic+"/32 -j DNAT --to-destination "+webAddr) {
				return fmt.Errorf("DNAT4: %v\n%s", err, out)
			}
			out, err = lab.Run(context.Background(), m, "iptables", "-t", "nat", "-S", "SNAT4")
			if err != nil || !strings.Contains(out, "-s "+webAddr+"/32 ") || !strings.Contains(out, "-j SNAT --to-source "+webPublic) {
				return fmt.Errorf("SNAT4: %v\n%s", err, out)
			}
			return nil
		}},
		{"sdnat4", "internet -> " + webPublic + ":80 TCP and UDP reach web", func() error {
			if err := answer(w.inet, "tcp", webPublic+":80", "name=web", "local="+webAddr+":80", "peer="+lab.InetAddr+":"); err != nil {
				return err
			}
			return answer(w.inet, "udp", webPublic+":80", "name=web", "peer="+lab.InetAddr+":")
		}},
		{"sdnat4", "internet pings " + webPublic + ": web answers, not the router", func() error {
			before := echoes(web)
			if _, err := lab.Run(context.Background(), w.inet, "ping", "-c", "2", "-W", "2", webPublic); err != nil {
				return err
			}
			if n := echoes(web) - before; n < 2 {
				return fmt.Errorf("web got %d of 2 echo requests", n)
			}
			return nil
		}},
		{"sdnat4", "web -> internet: seen as " + webPublic + "; the first VM still as " + lab.PublicVIP + " (NAT4)", func() error {
			if err := answer(web, "tcp", lab.InetAddr+":7000", "peer="+webPublic+":"); err != nil {
				return err
			}
			return answer(w.vm, "tcp", lab.InetAddr+":7000", "peer="+lab.PublicVIP+":")
		}},
		{"sdnat4", "hairpin: the first VM reaches web at " + webPublic, func() error {
			return answer(w.vm, "tcp", webPublic+":80", "name=web")
		}},
		{"sdnat4", m.Role + ": one-sdnat4 status: no drift; " + b.Role + " (backup): no mapping", func() error {
			if out, err := lab.Run(context.Background(), m, "one-sdnat4", "status"); err != nil {
				return fmt.Errorf("%v\n%s", err, out)
			}
			if mapped(b) {
				return fmt.Errorf("the backup holds %s", webPublic)
			}
			return nil
		}},
		{"sdnat4", "OneGate answers 503 for two refreshes: the mapping stays", func() error {
			since := time.Now()
			if err := gate.SetFaults(sim.Fault{Status: 503}); err != nil {
				return err
			}
			defer gate.SetFaults()
			// Two of one-sdnat4's polls met the outage.
			if err := lab.Eventually(4*sdnatRate, 100*time.Millisecond, func() error {
				if n := len(m.LogLinesSince("/var/log/one-appliance/one-sdnat4.log", since, "OneGate failed")); n < 2 {
					return fmt.Errorf("%d of one-sdnat4's polls met the outage, want 2", n)
				}
				return nil
			}); err != nil {
				return err
			}
			if !mapped(m) {
				return fmt.Errorf("%s was dropped during the outage", webPublic)
			}
			return answer(w.inet, "tcp", webPublic+":80", "name=web")
		}},
		{"sdnat4", "alias detached in OneGate: the mapping is gone within 3 refreshes", func() error {
			if err := gate.WriteDocument("vm-20", []byte(webNoAlias)); err != nil {
				return err
			}
			if err := live(false); err != nil {
				return err
			}
			if out, err := lab.Run(context.Background(), w.inet, lab.Bin("nettool"), "probe", "tcp", webPublic+":80", "--timeout", "1s"); err == nil {
				return fmt.Errorf("%s still answers: %s", webPublic, out)
			}
			return answer(web, "tcp", lab.InetAddr+":7000", "peer="+lab.PublicVIP+":")
		}},
	})
	again := r.measure("sdnat4", "alias attached again: mapped again (time from the change, refresh 2 s)", func() (time.Duration, error) {
		doc, err := fixture("vm-20")
		if err != nil {
			return 0, err
		}
		t0 := time.Now()
		if err := gate.WriteDocument("vm-20", doc); err != nil {
			return 0, err
		}
		if err := live(true); err != nil {
			return 0, err
		}
		took := time.Since(t0)
		return took, answer(w.inet, "tcp", webPublic+":80", "name=web")
	})
	if errs != nil {
		return errs
	}
	return again
}

// sdnatAddrs is the SDNAT4-labelled addresses of rt's lo, one line.
func sdnatAddrs(rt *lab.Router) string {
	out, _ := lab.Run(context.Background(), rt, "ip", "-4", "-o", "addr", "show", "dev", "lo", "label", "SDNAT4")
	var addrs []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 4 {
			addrs = append(addrs, f[3])
		}
	}
	if len(addrs) == 0 {
		return "(none)\n"
	}
	return strings.Join(addrs, " ") + " label SDNAT4\n"
}

var echoCount = regexp.MustCompile(`(?m)^\s*(\d+)\s+\d+\s+ACCEPT\s+(1|icmp)\b`)

// echoes is how many echo requests h received (its INPUT counter).
func echoes(h lab.Host) int {
	out, _ := lab.Run(context.Background(), h, "iptables", "-nvxL", "INPUT")
	m := echoCount.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// fixture reads a document of scripts/lab/onegate.
func fixture(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(lab.RepoRoot(), "scripts", "lab", "onegate", name+".json"))
}
