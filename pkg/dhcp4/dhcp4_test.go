package dhcp4

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coredhcp/coredhcp/plugins"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/dhcp4/onelease"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/golden"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

func testPlugins(root fsroot.Root, log *slog.Logger) PluginSet {
	return onelease.NewSet(onelease.Deps{Root: root, Log: log, LinkMTU: func(string) (int, error) { return 1500, nil }})
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestRender renders every testdata context and loads each rendered file
// with coredhcp's config loader and the plugins' own checks: the golden files
// are files the daemon accepts.
func TestRender(t *testing.T) {
	for _, c := range golden.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			out := golden.Render(t, Service{}, c.Env)
			golden.Check(t, c.Name, out)
			spec, err := FromContext(context.Background(), c.Env)
			if err != nil || !spec.Enabled {
				return
			}
			cfgs, err := LoadConfig(Render(spec), testPlugins("", discard()))
			if err != nil {
				t.Fatalf("the rendered file does not load: %v", err)
			}
			if len(cfgs) != len(spec.Servers) {
				t.Fatalf("loaded %d servers, rendered %d", len(cfgs), len(spec.Servers))
			}
			for i, sv := range spec.Servers {
				if cfgs[i].NIC != sv.NIC || cfgs[i].Listen.Zone != sv.NIC || cfgs[i].Listen.Port != 67 {
					t.Errorf("server %d: loaded %s listening on %v", i, cfgs[i].NIC, cfgs[i].Listen)
				}
			}
		})
	}
}

func spec(t *testing.T, pairs ...string) Spec {
	t.Helper()
	s, err := FromContext(context.Background(), onecontext.FromPairs(append([]string{"ONEAPP_VNF_DHCP4_ENABLED=YES"}, pairs...)...))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func server(t *testing.T, s Spec, nic string) Server {
	t.Helper()
	for _, sv := range s.Servers {
		if sv.NIC == nic {
			return sv
		}
	}
	t.Fatalf("no server for %s in %+v", nic, s)
	return Server{}
}

func TestDefaults(t *testing.T) {
	s := spec(t, "ETH0_IP=10.0.0.1", "ETH0_MASK=255.255.255.0", "ONEAPP_VROUTER_ETH0_VIP0=10.0.0.254", "ONEAPP_VROUTER_ETH0_VIP3=10.0.0.77")
	sv := server(t, s, "eth0")
	if sv.Start.String() != "10.0.0.1" || sv.End.String() != "10.0.0.254" {
		t.Errorf("pool %s-%s, want the whole subnet without network and broadcast", sv.Start, sv.End)
	}
	if got := strings.Join(strs(sv.Excluded), " "); got != "10.0.0.1 10.0.0.77 10.0.0.254" {
		t.Errorf("excluded %s, want the router's address and its VIPs", got)
	}
	if sv.ServerID.String() != "10.0.0.254" || strings.Join(strs(sv.Routers), " ") != "10.0.0.254" {
		t.Errorf("server id %s routers %v, want the NIC's EP0 (its VIP0)", sv.ServerID, sv.Routers)
	}
	if !sv.MAC2IP || sv.MACPrefix != "02:00" || !sv.Authoritative || sv.LeaseTime != time.Hour || sv.MTU != 0 {
		t.Errorf("defaults: %+v", sv)
	}
}

func TestDNSPrecedence(t *testing.T) {
	base := []string{"ETH1_IP=10.0.0.2", "ETH1_MASK=255.255.255.0", "ETH1_VROUTER_IP=10.0.0.1", "ETH1_DNS=10.0.0.53", "DNS=9.9.9.9"}
	for _, tt := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"context ETHx_DNS", nil, "10.0.0.53"},
		{"context DNS", []string{"ETH1_DNS="}, "9.9.9.9"},
		{"one-dns serves the NIC: the router's EP0", []string{"ONEAPP_VNF_DNS_ENABLED=YES"}, "10.0.0.1"},
		{"one-dns on other NICs only", []string{"ONEAPP_VNF_DNS_ENABLED=YES", "ETH0_IP=192.0.2.1", "ONEAPP_VNF_DNS_INTERFACES=eth0"}, "10.0.0.53"},
		{"global DHCP4 DNS", []string{"ONEAPP_VNF_DNS_ENABLED=YES", "ONEAPP_VNF_DHCP4_DNS=1.1.1.1 8.8.8.8"}, "1.1.1.1 8.8.8.8"},
		{"per-NIC DHCP4 DNS", []string{"ONEAPP_VNF_DHCP4_DNS=1.1.1.1", "ONEAPP_VNF_DHCP4_ETH1_DNS=<ETH1_IP0>"}, "10.0.0.2"},
		{"invalid DNS context: one-dns serves nothing", []string{"ONEAPP_VNF_DNS_ENABLED=perhaps"}, "10.0.0.53"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sv := server(t, spec(t, append(append([]string{}, base...), tt.extra...)...), "eth1")
			if got := strings.Join(strs(sv.DNS), " "); got != tt.want {
				t.Errorf("DNS %q (from %s), want %q", got, sv.DNSFrom, tt.want)
			}
		})
	}
}

func TestGatewayAndMTUPrecedence(t *testing.T) {
	base := []string{"ETH1_IP=10.0.0.2", "ETH1_MASK=255.255.255.0", "ETH1_MTU=1400"}
	sv := server(t, spec(t, base...), "eth1")
	if strs(sv.Routers)[0] != "10.0.0.2" || sv.MTU != 1400 {
		t.Errorf("router %v mtu %d, want EP0 and ETH1_MTU", sv.Routers, sv.MTU)
	}
	sv = server(t, spec(t, append(base, "ONEAPP_VNF_DHCP4_GATEWAY=10.0.0.254", "ONEAPP_VNF_DHCP4_ETH1_MTU=9000")...), "eth1")
	if strs(sv.Routers)[0] != "10.0.0.254" || sv.MTU != 9000 {
		t.Errorf("router %v mtu %d, want the global gateway and the per-NIC MTU", sv.Routers, sv.MTU)
	}
	sv = server(t, spec(t, append(base, "ONEAPP_VNF_DHCP4_GATEWAY=10.0.0.254", "ONEAPP_VNF_DHCP4_ETH1_GATEWAY=10.0.0.253")...), "eth1")
	if strings.Join(strs(sv.Routers), " ") != "10.0.0.253" || !containsAddr(sv.Excluded, sv.Routers[0]) {
		t.Errorf("router %v excluded %v, want the per-NIC gateway, kept out of the pool", sv.Routers, sv.Excluded)
	}
}

func TestBadInput(t *testing.T) {
	base := []string{"ETH1_IP=10.0.0.1", "ETH1_MASK=255.255.255.0"}
	for _, tt := range []struct{ v, name string }{
		{"ONEAPP_VNF_DHCP4_ETH1=10.0.0.0/24:10.0.0.50-10.0.0.10", "ONEAPP_VNF_DHCP4_ETH1"},
		{"ONEAPP_VNF_DHCP4_ETH1=10.0.0.0/24:10.0.0.10-10.0.1.10", "ONEAPP_VNF_DHCP4_ETH1"},
		{"ONEAPP_VNF_DHCP4_ETH1=10.7.0.0/24", "ONEAPP_VNF_DHCP4_ETH1"},
		{"ONEAPP_VNF_DHCP4_ETH1=10.0.0.0/24:10.0.0.10", "ONEAPP_VNF_DHCP4_ETH1"},
		{"ONEAPP_VNF_DHCP4_ETH1=garbage", "ONEAPP_VNF_DHCP4_ETH1"},
		{"ONEAPP_VNF_DHCP4_ETH4=10.4.0.0/24", "ONEAPP_VNF_DHCP4_ETH4"},
		{"ONEAPP_VNF_DHCP4_MAC2IP_MACPREFIX=0200", "ONEAPP_VNF_DHCP4_MAC2IP_MACPREFIX"},
		{"ONEAPP_VNF_DHCP4_MAC2IP_MACPREFIX=zz:00", "ONEAPP_VNF_DHCP4_MAC2IP_MACPREFIX"},
		{"ONEAPP_VNF_DHCP4_ETH1_MTU=65536", "ONEAPP_VNF_DHCP4_ETH1_MTU"},
		{"ONEAPP_VNF_DHCP4_ETH1_MTU=1500b", "ONEAPP_VNF_DHCP4_ETH1_MTU"},
		{"ONEAPP_VNF_DHCP4_DNS=8.8.8", "ONEAPP_VNF_DHCP4_DNS"},
		{"ONEAPP_VNF_DHCP4_GATEWAY=2001:db8::1", "ONEAPP_VNF_DHCP4_GATEWAY"},
		{"ONEAPP_VNF_DHCP4_ETH1_GATEWAY=<ETH1_VIP0>", "ONEAPP_VNF_DHCP4_ETH1_GATEWAY"},
		{"ONEAPP_VNF_DHCP4_LEASE_TIME=10", "ONEAPP_VNF_DHCP4_LEASE_TIME"},
		{"ONEAPP_VNF_DHCP4_AUTHORITATIVE=maybe", "ONEAPP_VNF_DHCP4_AUTHORITATIVE"},
		{"ONEAPP_VNF_DHCP4_INTERFACES=eth1 eth5", "ONEAPP_VNF_DHCP4_INTERFACES"},
	} {
		env := onecontext.FromPairs(append(append([]string{"ONEAPP_VNF_DHCP4_ENABLED=YES"}, base...), tt.v)...)
		_, err := FromContext(context.Background(), env)
		if cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), tt.name+"=") {
			t.Errorf("%s: err %v (exit %d), want exit 2 naming %s", tt.v, err, cli.ExitCode(err), tt.name)
		}
	}
}

// rt is a runtime on a temporary root.
func rt(t *testing.T, env string) (*cli.Runtime, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	return &cli.Runtime{Env: onecontext.FromPairs(strings.Fields(env)...), Root: fsroot.Root(t.TempDir()), Log: discard(), Stdout: &out}, &out
}

const ctx1 = "ETH0_IP=203.0.113.2 ETH1_IP=10.0.0.1 ETH1_MASK=255.255.255.0 ONEAPP_VNF_DHCP4_ENABLED=YES ONEAPP_VNF_DHCP4_INTERFACES=eth1"

func TestConfigure(t *testing.T) {
	svc := Service{Plugins: testPlugins}
	r, _ := rt(t, ctx1)
	if err := svc.Configure(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	first, err := r.Root.ReadFile(ConfigPath)
	if err != nil || !strings.Contains(string(first), "listen:\n      - \"%eth1\"") {
		t.Fatalf("config: %q %v", first, err)
	}
	if st, _ := os.Stat(r.Root.Path(ConfigPath)); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", st.Mode())
	}

	// Bad input: exit 2, the live file untouched.
	bad := *r
	bad.Env = r.Env.With("ONEAPP_VNF_DHCP4_ETH1=10.0.0.0/24:10.0.0.9-10.0.0.1")
	if err := svc.Configure(context.Background(), &bad); cli.ExitCode(err) != 2 {
		t.Fatalf("bad pool: %v", err)
	}
	if now, _ := r.Root.ReadFile(ConfigPath); !bytes.Equal(now, first) {
		t.Fatal("a bad context changed the live file")
	}

	// A plugin that rejects the rendered arguments: the check fails, the live file stays.
	rej := Service{Plugins: func(fsroot.Root, *slog.Logger) PluginSet { return rejecting{} }}
	other := *r
	other.Env = r.Env.With("ONEAPP_VNF_DHCP4_LEASE_TIME=7200")
	if err := rej.Configure(context.Background(), &other); err == nil || !strings.Contains(err.Error(), "live file is unchanged") {
		t.Fatalf("rejected candidate: %v", err)
	}
	if now, _ := r.Root.ReadFile(ConfigPath); !bytes.Equal(now, first) {
		t.Fatal("a rejected candidate replaced the live file")
	}

	// Disabled: no configuration.
	off := *r
	off.Env = r.Env.With("ONEAPP_VNF_DHCP4_ENABLED=NO")
	if err := svc.Configure(context.Background(), &off); err != nil || r.Root.Exists(ConfigPath) {
		t.Fatalf("disabled: err %v, file left: %v", err, r.Root.Exists(ConfigPath))
	}
}

// rejecting is a PluginSet whose checks refuse everything.
type rejecting struct{}

func (rejecting) Plugins() []*plugins.Plugin { return nil }
func (rejecting) Check(name string, _ ...string) error {
	return errors.New(name + ": rejected")
}
func (rejecting) Close() error { return nil }

func TestLoadConfigRejects(t *testing.T) {
	ps := testPlugins("", discard())
	good := string(Render(spec(t, "ETH1_IP=10.0.0.1", "ETH1_MASK=255.255.255.0")))
	for _, tt := range []struct{ name, data, want string }{
		{"not YAML", "eth1: [", "parsing YAML"},
		{"not a NIC", strings.Replace(good, "eth1:", "lan:", 1), "not a NIC name"},
		{"listen elsewhere", strings.Replace(good, `"%eth1"`, `"%eth2"`, 1), "listen must be"},
		{"unknown plugin", strings.Replace(good, "- netmask:", "- sleep:", 1), "unknown plugin"},
		{"bad plugin argument", strings.Replace(good, "- router: 10.0.0.1", "- router: 10.0.0.x", 1), "router"},
		{"onelease not last", good + "      - mtu: 1500\n", "last plugin"},
		{"server6", good + "eth2:\n  server6:\n    plugins:\n      - server_id: LL 00:11:22:33:44:55\n", "server6"},
		{"onelease torn arguments", strings.Replace(good, " 3600s", "", 1), "onelease"},
	} {
		if _, err := LoadConfig([]byte(tt.data), ps); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := LoadConfig([]byte(good), ps); err != nil {
		t.Fatalf("good file: %v", err)
	}
}

func TestStatusAndStopWithoutDaemon(t *testing.T) {
	svc := Service{Plugins: testPlugins}
	r, _ := rt(t, ctx1)
	for i := 0; i < 2; i++ {
		if err := svc.Stop(context.Background(), r); err != nil {
			t.Fatalf("stop on an empty system: %v", err)
		}
	}
	rep, err := svc.Status(context.Background(), r)
	if err != nil || rep.Applied || len(rep.Drift) != 2 {
		t.Fatalf("status before configure: %+v %v", rep, err)
	}
	if err := svc.Configure(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	// A state file left by a daemon that died is not a running daemon.
	if _, err := r.Root.WriteFile(StatePath, []byte(`{"pid": 999999999}`), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, _ = svc.Status(context.Background(), r)
	if rep.Applied || len(rep.Drift) != 1 || !strings.Contains(rep.Drift[0], "not running") {
		t.Fatalf("status after configure: %+v", rep)
	}
	if !strings.Contains(strings.Join(rep.Details, "\n"), "eth1: pool 10.0.0.1-10.0.0.254 (1 excluded), router 10.0.0.1") {
		t.Errorf("details: %v", rep.Details)
	}
	if err := svc.Stop(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}
