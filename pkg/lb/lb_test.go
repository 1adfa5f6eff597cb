package lb

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/onegate"
)

var (
	lvs = Family{Name: "LVS", StaticPrefix: "ONEAPP_VNF_LB", DynamicPrefix: "ONEGATE_LB", Interfaces: "ONEAPP_VNF_LB_INTERFACES",
		AllPorts: true, Options: []string{"PROTOCOL", "METHOD", "SCHEDULER"}, MaxWeight: 65535}
	hap = Family{Name: "HAProxy", StaticPrefix: "ONEAPP_VNF_HAPROXY_LB", DynamicPrefix: "ONEGATE_HAPROXY_LB", Interfaces: "ONEAPP_VNF_HAPROXY_INTERFACES",
		Options: []string{"BALANCE", "CHECK_INTERVAL"}, Ignored: []string{"PROTOCOL", "METHOD", "SCHEDULER"}, MaxWeight: 256}
	lvsVars = Vars{Enabled: "ONEAPP_VNF_LB_ENABLED", OneGate: "ONEAPP_VNF_LB_ONEGATE_ENABLED", Refresh: "ONEAPP_VNF_LB_REFRESH_RATE"}
	hapVars = Vars{Enabled: "ONEAPP_VNF_HAPROXY_ENABLED", OneGate: "ONEAPP_VNF_HAPROXY_ONEGATE_ENABLED", Refresh: "ONEAPP_VNF_HAPROXY_REFRESH_RATE"}
)

// router is the guide's topology: eth0 public 10.0.1.1 (VIP 10.0.1.10),
// eth1 private 172.20.0.1, eth2 a management NIC.
var router = []string{
	"ETH0_IP=10.0.1.1", "ETH0_MASK=255.255.255.0", "ONEAPP_VROUTER_ETH0_VIP0=10.0.1.10",
	"ETH1_IP=172.20.0.1", "ETH1_MASK=255.255.255.0",
	"ETH2_IP=192.168.150.2", "ETH2_VROUTER_MANAGEMENT=YES", "ONEAPP_VROUTER_ETH2_VIP0=192.168.150.1",
}

func envOf(pairs ...string) onecontext.Env {
	return onecontext.FromPairs(append(append([]string{}, router...), pairs...)...)
}

func TestParseHost(t *testing.T) {
	good := map[string]string{
		"10.0.0.5": "10.0.0.5", " 10.0.0.5 ": "10.0.0.5", "web": "web", "Web-1.Example.COM": "web-1.example.com",
		"a.b-c.d9": "a.b-c.d9", "1a.example": "1a.example", strings.Repeat("a", 63) + ".x": strings.Repeat("a", 63) + ".x",
	}
	for in, want := range good {
		got, _, err := ParseHost(in)
		if err != nil || got != want {
			t.Errorf("ParseHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{
		"", " ", "10.0.0.256", "10.0.0", "10.0.0.5:80", "10.0.0.5/24", "::1", "fe80::1", "0.0.0.0", "255.255.255.255", "224.0.0.1",
		"web\n    bind *:22", "web server", "a;b", "a{b", "a}b", "a#b", "a\"b", "a'b", "a_b", "-a.example", "a-.example", "a..b", ".a", "a.",
		strings.Repeat("a", 64) + ".x", strings.Repeat("a.", 127) + "ab", "web\x00", "wéb", "a\tb", "$(reboot)", "`id`",
	}
	for _, in := range bad {
		if got, _, err := ParseHost(in); err == nil {
			t.Errorf("ParseHost(%q) = %q, want an error", in, got)
		}
	}
}

func TestStaticGuideLVS(t *testing.T) {
	env := envOf(
		"ONEAPP_VNF_LB_ENABLED=YES",
		"ONEAPP_VNF_LB0_IP=<ETH0_EP0>", "ONEAPP_VNF_LB0_PORT=80", "ONEAPP_VNF_LB0_PROTOCOL=TCP", "ONEAPP_VNF_LB0_METHOD=NAT", "ONEAPP_VNF_LB0_SCHEDULER=rr",
		"ONEAPP_VNF_LB0_SERVER0_HOST=172.20.0.104", "ONEAPP_VNF_LB0_SERVER0_PORT=8080",
		"ONEAPP_VNF_LB0_SERVER1_HOST=172.20.0.105", "ONEAPP_VNF_LB0_SERVER1_PORT=8080",
	)
	cfg, err := lvs.FromContext(env, "/nonexistent", lvsVars)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.LBs) != 1 {
		t.Fatalf("LBs: %+v", cfg.LBs)
	}
	l := cfg.LBs[0]
	if l.Addr != netip.MustParseAddr("10.0.1.10") || l.Port != 80 || l.NIC != "eth0" || l.AddrVar != "ONEAPP_VNF_LB0_IP" {
		t.Errorf("LB: %+v", l)
	}
	if o, ok := l.Opt("SCHEDULER"); !ok || o.Value != "rr" || o.Var != "ONEAPP_VNF_LB0_SCHEDULER" {
		t.Errorf("scheduler option: %+v", o)
	}
	want := []Server{
		{Host: "172.20.0.104", Addr: netip.MustParseAddr("172.20.0.104"), Port: 8080, Weight: 1, Source: "ONEAPP_VNF_LB0_SERVER0"},
		{Host: "172.20.0.105", Addr: netip.MustParseAddr("172.20.0.105"), Port: 8080, Weight: 1, Source: "ONEAPP_VNF_LB0_SERVER1"},
	}
	if d := cmp.Diff(want, l.Servers, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Error(d)
	}
	if cfg.Refresh != DefaultRefresh || cfg.OneGate || cfg.Discovery.API != APINone {
		t.Errorf("settings: %+v", cfg)
	}
}

func TestStaticAllPortsAndUnboundedIndexes(t *testing.T) {
	env := envOf(
		"ONEAPP_VNF_LB_ENABLED=YES",
		"ONEAPP_VNF_LB12_IP=10.0.1.10",
		"ONEAPP_VNF_LB12_SERVER10_HOST=172.20.0.110", "ONEAPP_VNF_LB12_SERVER10_WEIGHT=7",
		"ONEAPP_VNF_LB12_SERVER2_HOST=172.20.0.102", "ONEAPP_VNF_LB12_SERVER2_ULIMIT=100", "ONEAPP_VNF_LB12_SERVER2_LLIMIT=10",
		// Empty is unset everywhere: this server has no port, and the
		// empty protocol is no option at all (the original rendered "protocol ").
		"ONEAPP_VNF_LB12_SERVER2_PORT=", "ONEAPP_VNF_LB12_PROTOCOL=",
		"ONEAPP_VNF_LB_TIMEOUT=5", "ONEAPP_VNF_LB12_TIMEOUT=5",
	)
	cfg, err := lvs.FromContext(env, "/nonexistent", lvsVars)
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.LBs[0]
	if l.Index != 12 || l.Port != 0 || l.Endpoint() != "10.0.1.10:*" || len(l.Options) != 0 {
		t.Fatalf("LB: %+v", l)
	}
	if len(l.Servers) != 2 || l.Servers[0].Host != "172.20.0.102" || l.Servers[0].ULimit != 100 || l.Servers[0].LLimit != 10 ||
		l.Servers[1].Host != "172.20.0.110" || l.Servers[1].Weight != 7 || l.Servers[1].Port != 0 {
		t.Fatalf("servers (sorted by server index, 2 before 10): %+v", l.Servers)
	}
}

func TestStaticErrors(t *testing.T) {
	cases := []struct {
		name   string
		fam    Family
		vars   Vars
		env    []string
		inVar  string
		substr string
	}{
		{"options without an address", lvs, lvsVars, []string{"ONEAPP_VNF_LB0_PORT=80"}, "ONEAPP_VNF_LB0_PORT", "set ONEAPP_VNF_LB0_IP"},
		{"servers of an LB without address", lvs, lvsVars, []string{"ONEAPP_VNF_LB3_SERVER0_HOST=172.20.0.5"}, "ONEAPP_VNF_LB3_SERVER0_HOST", "LB3 has no address"},
		{"server without host", lvs, lvsVars, []string{"ONEAPP_VNF_LB0_IP=10.0.1.1", "ONEAPP_VNF_LB0_SERVER1_PORT=80"}, "ONEAPP_VNF_LB0_SERVER1_PORT", "set ONEAPP_VNF_LB0_SERVER1_HOST"},
		{"HAProxy LB without port", hap, hapVars, []string{"ONEAPP_VNF_HAPROXY_LB0_IP=10.0.1.1"}, "ONEAPP_VNF_HAPROXY_LB0_IP", "set ONEAPP_VNF_HAPROXY_LB0_PORT"},
		{"HAProxy server without port", hap, hapVars, []string{"ONEAPP_VNF_HAPROXY_LB0_IP=10.0.1.1", "ONEAPP_VNF_HAPROXY_LB0_PORT=80", "ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST=172.20.0.5"}, "ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST", "set ONEAPP_VNF_HAPROXY_LB0_SERVER0_PORT"},
		{"bad address", lvs, lvsVars, []string{"ONEAPP_VNF_LB0_IP=10.0.1"}, "ONEAPP_VNF_LB0_IP", "not an IPv4 address"},
		{"unresolved placeholder", lvs, lvsVars, []string{"ONEAPP_VNF_LB0_IP=<ETH1_VIP0>"}, "ONEAPP_VNF_LB0_IP", "resolves to nothing"},
		{"not the router's", lvs, lvsVars, []string{"ONEAPP_VNF_LB0_IP=10.0.1.99"}, "ONEAPP_VNF_LB0_IP", "not an address of this router"},
		{"management NIC", lvs, lvsVars, []string{"ONEAPP_VNF_LB0_IP=192.168.150.2", "ONEAPP_VNF_LB0_PORT=80"}, "ONEAPP_VNF_LB0_IP", "management NIC"},
		{"outside the interface list", hap, hapVars, []string{"ONEAPP_VNF_HAPROXY_INTERFACES=eth0", "ONEAPP_VNF_HAPROXY_LB0_IP=172.20.0.1", "ONEAPP_VNF_HAPROXY_LB0_PORT=80"}, "ONEAPP_VNF_HAPROXY_LB0_IP", "leaves out"},
		{"bad port", lvs, lvsVars, []string{"ONEAPP_VNF_LB0_IP=10.0.1.1", "ONEAPP_VNF_LB0_PORT=0x50"}, "ONEAPP_VNF_LB0_PORT", "not a number 1-65535"},
		{"bad server port", lvs, lvsVars, []string{"ONEAPP_VNF_LB0_IP=10.0.1.1", "ONEAPP_VNF_LB0_SERVER0_HOST=172.20.0.5", "ONEAPP_VNF_LB0_SERVER0_PORT=70000"}, "ONEAPP_VNF_LB0_SERVER0_PORT", "1-65535"},
		{"injected host", hap, hapVars, []string{"ONEAPP_VNF_HAPROXY_LB0_IP=10.0.1.1", "ONEAPP_VNF_HAPROXY_LB0_PORT=80", "ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST=172.20.0.5:22\nlisten x", "ONEAPP_VNF_HAPROXY_LB0_SERVER0_PORT=80"}, "ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST", "neither"},
		{"weight", hap, hapVars, []string{"ONEAPP_VNF_HAPROXY_LB0_IP=10.0.1.1", "ONEAPP_VNF_HAPROXY_LB0_PORT=80", "ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST=a", "ONEAPP_VNF_HAPROXY_LB0_SERVER0_PORT=80", "ONEAPP_VNF_HAPROXY_LB0_SERVER0_WEIGHT=300"}, "ONEAPP_VNF_HAPROXY_LB0_SERVER0_WEIGHT", "0-256"},
		{"negative limit", lvs, lvsVars, []string{"ONEAPP_VNF_LB0_IP=10.0.1.1", "ONEAPP_VNF_LB0_SERVER0_HOST=172.20.0.5", "ONEAPP_VNF_LB0_SERVER0_ULIMIT=-5"}, "ONEAPP_VNF_LB0_SERVER0_ULIMIT", "whole number"},
		{"limits reversed", lvs, lvsVars, []string{"ONEAPP_VNF_LB0_IP=10.0.1.1", "ONEAPP_VNF_LB0_SERVER0_HOST=172.20.0.5", "ONEAPP_VNF_LB0_SERVER0_ULIMIT=5", "ONEAPP_VNF_LB0_SERVER0_LLIMIT=5"}, "ONEAPP_VNF_LB0_SERVER0_LLIMIT", "below"},
		{"duplicate server", lvs, lvsVars, []string{"ONEAPP_VNF_LB0_IP=10.0.1.1", "ONEAPP_VNF_LB0_SERVER0_HOST=172.20.0.5", "ONEAPP_VNF_LB0_SERVER1_HOST=172.20.0.5"}, "ONEAPP_VNF_LB0_SERVER1_HOST", "already a server"},
		// keepalived rejects a real server written twice: a server without
		// a port is on the LB's, and an all-ports LB's servers have none.
		{"duplicate server on the LB's port", lvs, lvsVars, []string{"ONEAPP_VNF_LB0_IP=10.0.1.1", "ONEAPP_VNF_LB0_PORT=80", "ONEAPP_VNF_LB0_SERVER0_HOST=172.20.0.5", "ONEAPP_VNF_LB0_SERVER1_HOST=172.20.0.5", "ONEAPP_VNF_LB0_SERVER1_PORT=80"}, "ONEAPP_VNF_LB0_SERVER1_HOST", "172.20.0.5:80 is already a server of LB0"},
		{"duplicate server of an all-ports LB", lvs, lvsVars, []string{"ONEAPP_VNF_LB0_IP=10.0.1.1", "ONEAPP_VNF_LB0_SERVER0_HOST=172.20.0.5", "ONEAPP_VNF_LB0_SERVER0_PORT=22", "ONEAPP_VNF_LB0_SERVER1_HOST=172.20.0.5", "ONEAPP_VNF_LB0_SERVER1_PORT=80"}, "ONEAPP_VNF_LB0_SERVER1_HOST", "172.20.0.5 is already a server of LB0 10.0.1.1:*"},
		{"refresh", lvs, lvsVars, []string{"ONEAPP_VNF_LB_REFRESH_RATE=0"}, "ONEAPP_VNF_LB_REFRESH_RATE", "out of range"},
		{"refresh not a number", hap, hapVars, []string{"ONEAPP_VNF_HAPROXY_REFRESH_RATE=abc"}, "ONEAPP_VNF_HAPROXY_REFRESH_RATE", "seconds"},
		{"API", lvs, lvsVars, []string{"ONEAPP_VNF_LB_ONEGATE_API=oneflw"}, "ONEAPP_VNF_LB_ONEGATE_API", "auto, vrouter or service"},
		{"switch", hap, hapVars, []string{"ONEAPP_VNF_HAPROXY_ONEGATE_ENABLED=on"}, "ONEAPP_VNF_HAPROXY_ONEGATE_ENABLED", "boolean"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.fam.FromContext(envOf(append([]string{c.vars.Enabled + "=YES"}, c.env...)...), "/nonexistent", c.vars)
			var ve *onecontext.VarError
			if !errors.As(err, &ve) {
				t.Fatalf("want a VarError, got %v", err)
			}
			if !strings.Contains(err.Error(), c.inVar+"=") || !strings.Contains(err.Error(), c.substr) {
				t.Fatalf("error %q should name %s and say %q", err, c.inVar, c.substr)
			}
		})
	}
}

func TestDisabledReadsOnlyItsSwitch(t *testing.T) {
	cfg, err := lvs.FromContext(envOf("ONEAPP_VNF_LB0_PORT=bogus"), "/nonexistent", lvsVars)
	if err != nil || cfg.Enabled {
		t.Fatalf("%+v %v", cfg, err)
	}
	if _, err := lvs.FromContext(envOf("ONEAPP_VNF_LB_ENABLED=maybe"), "/nonexistent", lvsVars); err == nil {
		t.Fatal("a bad switch must fail")
	}
}

func TestManagementVIPAllowedForAPort(t *testing.T) {
	// As the original: VIPs of any NIC are allowed, management ones included
	// (the LVS service refuses them for an all-ports LB).
	cfg, err := hap.FromContext(envOf("ONEAPP_VNF_HAPROXY_ENABLED=YES", "ONEAPP_VNF_HAPROXY_INTERFACES=eth1",
		"ONEAPP_VNF_HAPROXY_LB0_IP=<ETH2_VIP0>", "ONEAPP_VNF_HAPROXY_LB0_PORT=8443",
		"ONEAPP_VNF_HAPROXY_LB1_IP=<ETH0_VIP0>", "ONEAPP_VNF_HAPROXY_LB1_PORT=80",
		"ONEAPP_VNF_HAPROXY_LB0_PROTOCOL=TCP"), "/nonexistent", hapVars)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.LBs[0].Management || cfg.LBs[0].NIC != "eth2" || cfg.LBs[1].NIC != "eth0" {
		t.Fatalf("%+v", cfg.LBs)
	}
	if len(cfg.Ignored) != 1 || cfg.Ignored[0] != "ONEAPP_VNF_HAPROXY_LB0_PROTOCOL" {
		t.Fatalf("ignored: %v", cfg.Ignored)
	}
}

func staticLVS(t *testing.T, extra ...string) Config {
	t.Helper()
	cfg, err := lvs.FromContext(envOf(append([]string{"ONEAPP_VNF_LB_ENABLED=YES", "ONEAPP_VNF_LB_ONEGATE_ENABLED=YES", "VROUTER_ID=3",
		"ONEAPP_VNF_LB0_IP=<ETH0_EP0>", "ONEAPP_VNF_LB0_PORT=80",
		"ONEAPP_VNF_LB0_SERVER0_HOST=172.20.0.104", "ONEAPP_VNF_LB0_SERVER0_PORT=8080",
		"ONEAPP_VNF_LB1_IP=10.0.1.1", "ONEAPP_VNF_LB1_PROTOCOL=UDP"}, extra...)...), "/nonexistent", lvsVars)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func hosts(l LB) []string {
	var out []string
	for _, s := range l.Servers {
		out = append(out, s.Source+"="+s.HostPort())
	}
	return out
}

func TestDynamicAndMerge(t *testing.T) {
	cfg := staticLVS(t)
	objs := []Object{
		// The guide's backend: joins LB0.
		{VM: 33, Attrs: map[string]string{"ONEGATE_LB0_IP": "<ETH0_EP0>", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "172.20.0.133", "ONEGATE_LB0_SERVER_PORT": "8080"}},
		// The same server as the static one: its weight wins, no duplicate.
		{VM: 34, Attrs: map[string]string{"ONEGATE_LB0_IP": "10.0.1.10", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "172.20.0.104", "ONEGATE_LB0_SERVER_PORT": "8080", "ONEGATE_LB0_SERVER_WEIGHT": "5"}},
		// Sorted before VM 33's server; and an all-ports LB1 backend without ports.
		{VM: 35, Attrs: map[string]string{"ONEGATE_LB0_IP": "10.0.1.10", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "172.20.0.120", "ONEGATE_LB0_SERVER_PORT": "8080",
			"ONEGATE_LB1_IP": "<ETH0_IP0>", "ONEGATE_LB1_SERVER_HOST": "172.20.0.121"}},
		// A duplicate of VM 33 (once), a wrong port (no LB), a wrong index.
		{VM: 36, Attrs: map[string]string{"ONEGATE_LB0_IP": "10.0.1.10", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "172.20.0.133", "ONEGATE_LB0_SERVER_PORT": "8080",
			"ONEGATE_LB2_IP": "10.0.1.10", "ONEGATE_LB2_PORT": "80", "ONEGATE_LB2_SERVER_HOST": "172.20.0.136", "ONEGATE_LB2_SERVER_PORT": "8080"}},
		{VM: 37, Attrs: map[string]string{"ONEGATE_LB0_IP": "10.0.1.10", "ONEGATE_LB0_PORT": "81", "ONEGATE_LB0_SERVER_HOST": "172.20.0.137", "ONEGATE_LB0_SERVER_PORT": "8080"}},
		// ID filter: another router's backend is ignored, ours and unset are taken.
		{VM: 40, Attrs: map[string]string{"ONEGATE_LB0_ID": "4", "ONEGATE_LB0_IP": "10.0.1.10", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "172.20.0.140", "ONEGATE_LB0_SERVER_PORT": "8080"}},
		{VM: 41, Attrs: map[string]string{"ONEGATE_LB0_ID": "3", "ONEGATE_LB0_IP": "10.0.1.10", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "172.20.0.141", "ONEGATE_LB0_SERVER_PORT": "8080"}},
		// Declared but not configured yet: silently waiting.
		{VM: 42, Attrs: map[string]string{"ONEGATE_LB0_IP": "10.0.1.10", "ONEGATE_LB0_PORT": "80"}},
	}
	cands, skips := lvs.ParseDynamic(objs, "3", cfg.Topology)
	if len(skips) != 0 {
		t.Fatalf("skips: %v", skips)
	}
	lbs, mskips := Merge(cfg.LBs, cands)
	want := []string{"ONEAPP_VNF_LB0_SERVER0=172.20.0.104:8080", "VM 35=172.20.0.120:8080", "VM 33=172.20.0.133:8080", "VM 41=172.20.0.141:8080"}
	if d := cmp.Diff(want, hosts(lbs[0])); d != "" {
		t.Error(d)
	}
	if lbs[0].Servers[0].Weight != 5 || lbs[0].Servers[0].Dynamic {
		t.Errorf("the static server takes the dynamic weight and stays static: %+v", lbs[0].Servers[0])
	}
	if d := cmp.Diff([]string{"VM 35=172.20.0.121"}, hosts(lbs[1])); d != "" {
		t.Error(d)
	}
	var got []string
	for _, s := range mskips {
		got = append(got, s.String())
	}
	wantSkips := []string{
		"VM 36: LB2 10.0.1.10:80 matches no LB of this router (index, address and port must match a static one)",
		"VM 37: LB0 10.0.1.10:81 matches no LB of this router (index, address and port must match a static one)",
	}
	if d := cmp.Diff(wantSkips, got); d != "" {
		t.Error(d)
	}
	if len(cfg.LBs[0].Servers) != 1 || cfg.LBs[0].Servers[0].Weight != 1 {
		t.Error("Merge modified the static LBs")
	}
}

func TestDynamicInvalidSkippedNamingTheVM(t *testing.T) {
	cfg := staticLVS(t)
	base := func(kv ...string) Object {
		m := map[string]string{"ONEGATE_LB0_IP": "10.0.1.10", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "172.20.0.50", "ONEGATE_LB0_SERVER_PORT": "8080"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return Object{VM: 50, Attrs: m}
	}
	cases := map[string]Object{
		"ONEGATE_LB0_IP is not set": base("ONEGATE_LB0_IP", ""),
		"ONEGATE_LB0_IP: not an IPv4 address or a placeholder of this router":       base("ONEGATE_LB0_IP", "<ETH9_EP0>"),
		"ONEGATE_LB0_PORT: not a port 1-65535":                                      base("ONEGATE_LB0_PORT", "80 "+"\n"+"x"),
		"ONEGATE_LB0_SERVER_HOST is not set":                                        base("ONEGATE_LB0_SERVER_HOST", ""),
		"ONEGATE_LB0_SERVER_HOST: invalid (not an IPv4 address or a host name)":     base("ONEGATE_LB0_SERVER_HOST", "172.20.0.50 8080\n    server evil 6.6.6.6:22"),
		"ONEGATE_LB0_SERVER_HOST: invalid (not an IPv4 address or a host name) (2)": base("ONEGATE_LB0_SERVER_HOST", "}\nvirtual_server 6.6.6.6 22 {"),
		"ONEGATE_LB0_SERVER_PORT: invalid (not a port 1-65535)":                     base("ONEGATE_LB0_SERVER_PORT", "8080 weight 100"),
		"ONEGATE_LB0_SERVER_WEIGHT: invalid (not a weight)":                         base("ONEGATE_LB0_SERVER_WEIGHT", "1\n}"),
		"ONEGATE_LB0_SERVER_ULIMIT: invalid (not a whole number)":                   base("ONEGATE_LB0_SERVER_ULIMIT", "-1"),
	}
	for want, o := range cases {
		want, _, _ = strings.Cut(want, " (2)")
		cands, skips := lvs.ParseDynamic([]Object{o}, "3", cfg.Topology)
		if len(cands) != 0 || len(skips) != 1 || skips[0].VM != 50 || skips[0].Reason != want {
			t.Errorf("%s: cands %+v skips %v", want, cands, skips)
		}
		for _, s := range skips {
			if strings.ContainsAny(s.Reason, "\n{}") {
				t.Errorf("the reason quotes the value: %q", s.Reason)
			}
		}
	}
	// A HAProxy backend without a server port is skipped too; LVS allows it
	// only for an all-ports LB.
	o := Object{VM: 51, Attrs: map[string]string{"ONEGATE_LB0_IP": "10.0.1.10", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "172.20.0.51"}}
	cands, _ := lvs.ParseDynamic([]Object{o}, "", cfg.Topology)
	if _, skips := Merge(cfg.LBs, cands); len(skips) != 1 || !strings.Contains(skips[0].String(), "VM 51: LB0 10.0.1.10:80: the server has no port") {
		t.Errorf("skips: %v", skips)
	}
	o = Object{VM: 52, Attrs: map[string]string{"ONEGATE_HAPROXY_LB0_IP": "10.0.1.10", "ONEGATE_HAPROXY_LB0_PORT": "80", "ONEGATE_HAPROXY_LB0_SERVER_HOST": "172.20.0.52"}}
	if _, skips := hap.ParseDynamic([]Object{o}, "", cfg.Topology); len(skips) != 1 || skips[0].Reason != "ONEGATE_HAPROXY_LB0_SERVER_PORT is not set" {
		t.Errorf("skips: %v", skips)
	}
}

func TestDiscoveryFromContext(t *testing.T) {
	cases := []struct {
		env  []string
		want Discovery
	}{
		{nil, Discovery{API: APINone}},
		{[]string{"VROUTER_ID=3"}, Discovery{API: APIVRouter, ID: "3"}},
		{[]string{"SERVICE_ID=7"}, Discovery{API: APIService, ID: "7"}},
		{[]string{"VROUTER_ID=3", "SERVICE_ID=7"}, Discovery{API: APIVRouter, ID: "3"}},
		{[]string{"VROUTER_ID=3", "SERVICE_ID=7", "ONEAPP_VNF_LB_ONEGATE_API=service"}, Discovery{API: APIService, ID: "7"}},
		{[]string{"SERVICE_ID=7", "ONEAPP_VNF_LB_ONEGATE_API=VRouter"}, Discovery{API: APIVRouter, ID: ""}},
		{[]string{"ONEAPP_VNF_LB_ONEGATE_API=auto", "SERVICE_ID=7"}, Discovery{API: APIService, ID: "7"}},
	}
	for _, c := range cases {
		d, err := DiscoveryFromContext(onecontext.FromPairs(c.env...))
		if err != nil || d.API != c.want.API || d.ID != c.want.ID {
			t.Errorf("%v: %+v %v, want %+v", c.env, d, err, c.want)
		}
	}
}

// fakeGate is a OneGate with canned answers.
type fakeGate struct {
	mu   sync.Mutex
	nets []onegate.VNet
	vms  []onegate.VM
	err  error
	n    int
}

func (f *fakeGate) Networks(context.Context) ([]onegate.VNet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.err != nil && !errors.Is(f.err, onegate.ErrStale) {
		return nil, f.err
	}
	return f.nets, f.err
}

func (f *fakeGate) ServiceVMs(context.Context) ([]onegate.VM, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.err != nil {
		return nil, f.err
	}
	return f.vms, nil
}

func lease(vm int, backend bool, attrs map[string]string) onegate.Lease {
	return onegate.Lease{VM: vm, VNet: onegate.None, Backend: backend, OneGate: attrs}
}

func TestFetch(t *testing.T) {
	attrs := map[string]string{"ONEGATE_LB0_IP": "10.0.1.10", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "172.20.0.60", "ONEGATE_LB0_SERVER_PORT": "80"}
	g := &fakeGate{
		nets: []onegate.VNet{
			{ID: 1, ARs: []onegate.AR{{Leases: []onegate.Lease{lease(60, true, attrs), lease(61, false, attrs), lease(onegate.None, true, attrs)}}}},
			{ID: 2, ARs: []onegate.AR{{Leases: []onegate.Lease{lease(60, true, attrs)}}}},
		},
		vms: []onegate.VM{{ID: 70, UserTemplate: map[string]string{"ONEGATE_LB0_IP": "x", "SSH_PUBLIC_KEY": "secret", "SERVICE_ID": "7"}}},
	}
	objs, err := Fetch(context.Background(), g, Discovery{API: APIVRouter})
	if err != nil || len(objs) != 1 || objs[0].VM != 60 {
		t.Fatalf("vrouter: %+v %v (BACKEND=YES leases only, each VM once)", objs, err)
	}
	objs, err = Fetch(context.Background(), g, Discovery{API: APIService})
	if err != nil || len(objs) != 1 || objs[0].VM != 70 || len(objs[0].Attrs) != 1 {
		t.Fatalf("service: %+v %v (ONEGATE_* attributes only)", objs, err)
	}
	if _, err := Fetch(context.Background(), g, Discovery{API: APINone}); !errors.Is(err, ErrNoSource) {
		t.Fatal(err)
	}
	g.err = errors.New("down")
	if objs, err := Fetch(context.Background(), g, Discovery{API: APIVRouter}); objs != nil || err == nil {
		t.Fatalf("%v %v", objs, err)
	}
}

func TestBackendsKeepTheLastGoodAnswer(t *testing.T) {
	cfg := staticLVS(t)
	attrs := map[string]string{"ONEGATE_LB0_IP": "10.0.1.10", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "172.20.0.60", "ONEGATE_LB0_SERVER_PORT": "80"}
	g := &fakeGate{nets: []onegate.VNet{{ID: 1, ARs: []onegate.AR{{Leases: []onegate.Lease{lease(60, true, attrs)}}}}}}
	b := &Backends{Family: lvs, Client: g}
	res := b.Resolve(context.Background(), cfg)
	if !res.Dynamic || res.Stale || len(res.LBs[0].Servers) != 2 {
		t.Fatalf("%+v", res)
	}
	g.err = errors.New("connection refused")
	res = b.Resolve(context.Background(), cfg)
	if !res.Stale || len(res.LBs[0].Servers) != 2 {
		t.Fatalf("an outage must keep the dynamic servers: %+v", res)
	}
	g.err = nil
	g.nets = nil
	res = b.Resolve(context.Background(), cfg)
	if res.Stale || len(res.LBs[0].Servers) != 1 {
		t.Fatalf("a fresh answer without backends removes them: %+v", res)
	}
	cfg.OneGate = false
	if res := b.Resolve(context.Background(), cfg); res.Dynamic || g.n != 3 {
		t.Fatalf("OneGate off: no request, static only: %+v (%d requests)", res, g.n)
	}
}

func TestLoop(t *testing.T) {
	cfg := staticLVS(t)
	attrs := map[string]string{"ONEGATE_LB0_IP": "10.0.1.10", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "172.20.0.60", "ONEGATE_LB0_SERVER_PORT": "80"}
	g := &fakeGate{nets: []onegate.VNet{{ID: 1, ARs: []onegate.AR{{Leases: []onegate.Lease{lease(60, true, attrs)}}}}}}
	applied := make(chan Result, 10)
	reload := make(chan struct{})
	disabled := cfg
	disabled.Enabled = false
	cfg.Gate = &onegate.Config{}
	l := &Loop[Config]{
		Family: lvs,
		Config: func(c Config) Config { return c },
		Client: func(Config) (OneGate, error) { return g, nil },
		Apply: func(_ context.Context, c Config, r Result) error {
			if !c.Enabled {
				r.LBs = nil
			}
			applied <- r
			return nil
		},
		Load:   func() (Config, error) { return disabled, nil },
		Reload: reload,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx, cfg) }()
	if r := <-applied; len(r.LBs) != 2 || len(r.LBs[0].Servers) != 2 {
		t.Fatalf("first apply (static + dynamic): %+v", r)
	}
	reload <- struct{}{}
	if r := <-applied; r.LBs != nil {
		t.Fatalf("after a reload with the service disabled: %+v", r)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-applied:
		t.Fatalf("applied after the end: %+v", r)
	case <-time.After(10 * time.Millisecond):
	}
}

// While OneGate does not answer render and status, the dynamic servers the
// running daemon keeps are used (they are no drift), with the failure
// named; without them, the static servers alone. The question is a quick
// one.
func TestResolveOnceKeepsWhatTheDaemonKeeps(t *testing.T) {
	var asked int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		asked++
		mu.Unlock()
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	endpoint, _ := onegate.ParseEndpoint(srv.URL)
	cfg := staticLVS(t)
	cfg.Gate = &onegate.Config{Endpoint: endpoint, Token: "t", Backoff: time.Millisecond}
	attrs := map[string]string{"ONEGATE_LB0_IP": "10.0.1.10", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "172.20.0.60", "ONEGATE_LB0_SERVER_PORT": "80"}
	kept := &Kept{PID: os.Getpid(), Discovery: cfg.Discovery, Objects: []Object{{VM: 60, Attrs: attrs}}, OneGate: "ok"}

	res := ResolveOnce(context.Background(), lvs, cfg, nil, kept)
	if !res.Dynamic || res.Err == nil || len(res.LBs[0].Servers) != 2 {
		t.Fatalf("kept: %+v", res)
	}
	if src := res.Source(cfg); !strings.HasPrefix(src, "static and dynamic: OneGate does not answer now (") || !strings.Contains(src, "HTTP 503") {
		t.Errorf("source: %s", src)
	}
	mu.Lock()
	if asked != onegate.QuickAttempts {
		t.Errorf("%d tries, want %d", asked, onegate.QuickAttempts)
	}
	mu.Unlock()
	for name, k := range map[string]*Kept{"no daemon": nil, "another source": {Discovery: Discovery{API: APIService, ID: "7"}, Objects: kept.Objects}} {
		res := ResolveOnce(context.Background(), lvs, cfg, nil, k)
		if res.Dynamic || len(res.LBs[0].Servers) != 1 || !strings.HasPrefix(res.Source(cfg), "static only: OneGate does not answer (") {
			t.Errorf("%s: %+v %s", name, res, res.Source(cfg))
		}
	}

	// The state file: read only while the daemon that wrote it runs.
	root := fsroot.Root(t.TempDir())
	comm, _ := os.ReadFile("/proc/self/comm")
	for _, c := range []struct {
		pid  int
		name string
		want bool
	}{{os.Getpid(), "one-lvs", true}, {os.Getppid(), strings.TrimSpace(string(comm)) + "-other", false}, {0, "one-lvs", false}} {
		k := *kept
		k.PID = c.pid
		b, _ := json.Marshal(k)
		if _, err := root.WriteFile("/run/one-lvs.state", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if got := ReadKept(root, "/run/one-lvs.state", c.name); (got != nil) != c.want || (got != nil && !cmp.Equal(*got, k)) {
			t.Errorf("pid %d (%s): %+v", c.pid, c.name, got)
		}
	}
	if ReadKept(root, "/run/missing.state", "one-lvs") != nil {
		t.Error("a missing state file")
	}
}

func TestResultDetails(t *testing.T) {
	cfg := staticLVS(t)
	res := Result{LBs: cfg.LBs, Skips: []Skip{{VM: 7, Reason: "ONEGATE_LB0_PORT is not set"}}}
	got := res.Details(LB.Endpoint)
	want := []string{"LB0 10.0.1.10:80: 172.20.0.104:8080", "LB1 10.0.1.1:*: none", "skipped: VM 7: ONEGATE_LB0_PORT is not set"}
	if d := cmp.Diff(want, got); d != "" {
		t.Error(d)
	}
}
