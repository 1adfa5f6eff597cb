package failover

import (
	"slices"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/openrc"
	"github.com/hypercx/vrouter/services"
)

// one-lvs and one-haproxy are data-plane services: started on the master,
// stopped on a backup, reloaded in place on a new context (their scripts
// declare reload). haproxy itself is one-haproxy's counterpart: one-failover
// never starts or stops it directly.
func TestLoadBalancersAreDataPlaneServices(t *testing.T) {
	vars := map[string]string{}
	for _, e := range Table() {
		vars[e.Name] = e.Var
		if e.Name == "haproxy" || e.Name == "keepalived" {
			t.Fatalf("%s is in the service table", e.Name)
		}
	}
	if vars["one-lvs"] != "ONEAPP_VNF_LB_ENABLED" || vars["one-haproxy"] != "ONEAPP_VNF_HAPROXY_ENABLED" {
		t.Fatalf("table: %v", vars)
	}
	root := fsroot.Root(t.TempDir())
	for _, s := range []string{"one-lvs", "one-haproxy", "haproxy"} {
		b, err := services.Script(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := root.WriteFile("/etc/init.d/"+s, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	scripts := InitScripts{Root: root}
	if !scripts.CanReload("one-lvs") || !scripts.CanReload("one-haproxy") {
		t.Fatal("the LB scripts cannot reload in place")
	}

	rc := newFakeRC("one-router4", "one-lvs", "one-haproxy", "haproxy")
	env := haEnv + " ONEAPP_VNF_LB_ENABLED=YES ONEAPP_VNF_HAPROXY_ENABLED=YES"
	h := startDaemon(t, mustSpec(t, env), rc, obs(10, "ETH0=all", "ETH1=all"))
	waitFor(t, "serving", func() bool {
		return rc.state("one-lvs") == openrc.Started && rc.state("one-haproxy") == openrc.Started
	})
	h.obs.set(obs(10, "ETH0=none", "ETH1=none"))
	h.write(`INSTANCE "ETH0" BACKUP 100`)
	waitFor(t, "quiesced", func() bool {
		return rc.state("one-lvs") == openrc.Stopped && rc.state("one-haproxy") == openrc.Stopped
	})
	for _, c := range rc.calls() {
		if strings.HasPrefix(c, "haproxy ") {
			t.Fatalf("one-failover drove haproxy directly: %v", rc.calls())
		}
	}
	if !slices.Contains(rc.calls(), "one-haproxy start") || !slices.Contains(rc.calls(), "one-haproxy stop") {
		t.Fatalf("calls: %v", rc.calls())
	}
}
