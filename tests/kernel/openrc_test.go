package kernel

import (
	"strings"
	"testing"
)

// The image build step and OpenRC: each binary installs itself and its
// script into a router instance, and rc-service drives it, logging to
// /var/log/one-appliance/<service>.log.
func TestOpenRCServices(t *testing.T) {
	nt := newNAT(t)
	if err := nt.router.Install("one-router4", "one-nat4"); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"start", "restart", "reload", "stop", "start"} {
		for _, svc := range []string{"one-router4", "one-nat4"} {
			if out, err := nt.router.RC(svc, verb); err != nil {
				t.Fatalf("rc-service %s %s: %v\n%s", svc, verb, err, out)
			}
		}
	}
	expect(t, nt.inet, "tcp", "203.0.113.1:8080", "name=vm1")
	out, _ := nt.router.RC("one-nat4", "status")
	if !strings.Contains(out, "started") {
		t.Fatalf("status: %s", out)
	}
	log, err := nt.router.ReadFile("/var/log/one-appliance/one-nat4.log")
	if err != nil || !strings.Contains(string(log), "NAT4 applied") {
		t.Fatalf("log: %q %v", log, err)
	}
	// A broken context: rc-service fails, the rules stay, the log says why.
	before := rules(t, nt.router)
	bad := natContext + "export ONEAPP_VNF_NAT4_PORT_FWD3=\"80:not-an-ip\"\n"
	if err := nt.router.WriteFile("/run/one-context/one_env", []byte(bad), 0o400); err != nil {
		t.Fatal(err)
	}
	if out, err := nt.router.RC("one-nat4", "reload"); err == nil {
		t.Fatalf("reload with a bad context succeeded: %s", out)
	}
	if rules(t, nt.router) != before {
		t.Fatal("a bad context changed the rules")
	}
	log, _ = nt.router.ReadFile("/var/log/one-appliance/one-nat4.log")
	if !strings.Contains(string(log), "ONEAPP_VNF_NAT4_PORT_FWD3") {
		t.Fatalf("log does not name the variable:\n%s", log)
	}
}
