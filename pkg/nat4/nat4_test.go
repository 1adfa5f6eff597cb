package nat4

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/golden"
	"github.com/hypercx/vrouter/pkg/netfilter/netfiltertest"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

func TestRender(t *testing.T) {
	for _, c := range golden.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			golden.Check(t, c.Name, golden.Render(t, Service{}, c.Env))
		})
	}
}

func TestParsePortForward(t *testing.T) {
	top, err := onecontext.FromPairs("ETH0_IP=203.0.113.2", "ETH0_VROUTER_IP=203.0.113.1", "ETH1_IP=10.0.0.1").Topology()
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	for _, tt := range []struct {
		in   string
		want PortForward
		err  string
	}{
		{"1.2.3.4:1234:10.11.12.13:4321", PortForward{Addr: a("1.2.3.4"), Port: 1234, ToAddr: a("10.11.12.13"), ToPort: 4321}, ""},
		{"5.6.7.8:1234:10.11.12.13", PortForward{Addr: a("5.6.7.8"), Port: 1234, ToAddr: a("10.11.12.13")}, ""},
		{"1234:10.11.12.13:4321", PortForward{Port: 1234, ToAddr: a("10.11.12.13"), ToPort: 4321}, ""},
		{"2345:10.11.12.13", PortForward{Port: 2345, ToAddr: a("10.11.12.13")}, ""},
		{"<ETH0_EP0>:1234:10.11.12.13:4321", PortForward{Addr: a("203.0.113.1"), Port: 1234, ToAddr: a("10.11.12.13"), ToPort: 4321}, ""},
		{"<ETH0_IP0>:1:10.0.0.2", PortForward{Addr: a("203.0.113.2"), Port: 1, ToAddr: a("10.0.0.2")}, ""},
		{" 80 : 10.0.0.2 : 8080 ", PortForward{Port: 80, ToAddr: a("10.0.0.2"), ToPort: 8080}, ""},
		{"80:10.0.0.2:", PortForward{Port: 80, ToAddr: a("10.0.0.2")}, ""},
		{"80", PortForward{}, "fields"},
		{"1:2:3:4:5", PortForward{}, "5 fields"},
		{"80:x", PortForward{}, "new destination"},
		{"x:80:10.0.0.2", PortForward{}, "old destination"},
		{"<ETH9_EP0>:80:10.0.0.2", PortForward{}, "resolves to nothing"},
		{"1.2.3.4:80", PortForward{}, "want"},
		{"0:10.0.0.2", PortForward{}, "old port"},
		{"65536:10.0.0.2", PortForward{}, "old port"},
		{"80:10.0.0.2:0x1F", PortForward{}, "new port"},
		{"80:10.0.0.2/24", PortForward{}, "new destination"},
		{"1.2.3.4/24:80:10.0.0.2", PortForward{}, "old destination"},
		{"-5:10.0.0.2", PortForward{}, "old destination"},
	} {
		got, err := ParsePortForward(top, tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if d := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
			t.Errorf("%q: %s", tt.in, d)
		}
	}
}

const full = `ETH0_IP=203.0.113.2 ETH1_IP=10.0.0.1 ETH1_MASK=255.255.255.0 ONEAPP_VNF_NAT4_ENABLED=YES ONEAPP_VNF_NAT4_INTERFACES_OUT=eth0 ONEAPP_VNF_NAT4_PORT_FWD0=8080:10.0.0.2:80`

func rt(f *netfiltertest.IPTables, env string) *cli.Runtime {
	return &cli.Runtime{Env: onecontext.FromPairs(strings.Fields(env)...), Netfilter: f.Applier(), Log: slog.New(slog.DiscardHandler), Stdout: &bytes.Buffer{}}
}

func TestStartTwiceStopTwiceCanary(t *testing.T) {
	ctx := context.Background()
	f := netfiltertest.New()
	if err := f.Run("-t nat -A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE"); err != nil {
		t.Fatal(err)
	}
	before := f.Dump()
	r := rt(f, full)
	if err := (Service{}).Start(ctx, r); err != nil {
		t.Fatal(err)
	}
	masq, _ := f.Rules("nat", ChainMASQ)
	if d := cmp.Diff([]string{"-s 10.0.0.0/24 -o eth1 -m conntrack --ctstate DNAT -j MASQUERADE", "-o eth0 -j MASQUERADE"}, masq); d != "" {
		t.Error(d)
	}
	writes := f.Writes
	if err := (Service{}).Start(ctx, r); err != nil || f.Writes != writes {
		t.Fatalf("re-applying an unchanged context wrote %d times (%v)", f.Writes-writes, err)
	}
	if rep, err := (Service{}).Status(ctx, r); err != nil || len(rep.Drift) != 0 || !rep.Applied {
		t.Fatalf("status: %+v %v", rep, err)
	}
	for i := 0; i < 2; i++ {
		if err := (Service{}).Stop(ctx, r); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(before, f.Dump()); d != "" {
			t.Fatalf("stop %d: canary or leftovers (-before +after):\n%s", i, d)
		}
	}
}

func TestStopOnEmptySystem(t *testing.T) {
	f := netfiltertest.New()
	if err := (Service{}).Stop(context.Background(), rt(f, "ETH0_IP=garbage")); err != nil || f.Writes != 0 {
		t.Fatal(err, f.Writes)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	ctx := context.Background()
	f := netfiltertest.New()
	if err := (Service{}).Start(ctx, rt(f, full)); err != nil {
		t.Fatal(err)
	}
	before, writes := f.Dump(), f.Writes
	for _, bad := range []string{
		"ONEAPP_VNF_NAT4_PORT_FWD1=80:x",
		"ONEAPP_VNF_NAT4_PORT_FWD1=1:2:3:4:5",
		"ONEAPP_VNF_NAT4_ENABLED=maybe",
		"ONEAPP_VNF_NAT4_INTERFACES_OUT=eth7",
		"ONEAPP_VNF_NAT4_PORT_FWD1=<ETH4_VIP0>:80:10.0.0.2",
		"ONEAPP_VNF_NAT4_INTERFACES_OUT=eth0;touch_/tmp/x",
		"ONEAPP_VNF_CONNTRACKD_ENABLED=maybe",
	} {
		err := (Service{}).Start(ctx, rt(f, full+" "+bad))
		name, _, _ := strings.Cut(bad, "=")
		if cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: exit %d, %v", bad, cli.ExitCode(err), err)
		}
	}
	if f.Dump() != before || f.Writes != writes {
		t.Fatal("bad input changed the rules")
	}
}

// Disabling NAT4 and starting removes the rules; render then shows nothing.
func TestDisabledRemoves(t *testing.T) {
	ctx := context.Background()
	f := netfiltertest.New()
	before := f.Dump()
	_ = (Service{}).Start(ctx, rt(f, full))
	if err := (Service{}).Start(ctx, rt(f, strings.Replace(full, "ENABLED=YES", "ENABLED=NO", 1))); err != nil {
		t.Fatal(err)
	}
	if f.Dump() != before {
		t.Fatal("disabled start left rules")
	}
}

// 10,000 forwards render and apply in one restore per table.
func TestManyForwardsOneTransaction(t *testing.T) {
	env := full
	var b strings.Builder
	for i := 0; i < 10000; i++ {
		b.WriteString(" ONEAPP_VNF_NAT4_PORT_FWD" + strconv.Itoa(i) + "=" + strconv.Itoa(10000+i) + ":10.0.0.2:80")
	}
	f := netfiltertest.New()
	if err := (Service{}).Start(context.Background(), rt(f, env+b.String())); err != nil {
		t.Fatal(err)
	}
	if f.Restores != 1 {
		t.Fatalf("%d restores", f.Restores)
	}
	dnat, _ := f.Rules("nat", ChainDNAT)
	if len(dnat) != 20000 {
		t.Fatalf("%d DNAT rules", len(dnat))
	}
}

// With conntrackd syncing the routers, connections leaving a NIC with a VIP
// are translated to the VIP; re-applying writes nothing; the VIP follows a
// recontextualization; stop removes everything.
func TestSNATToVIP(t *testing.T) {
	ctx := context.Background()
	f := netfiltertest.New()
	before := f.Dump()
	env := "ETH0_IP=203.0.113.2 ETH0_VROUTER_IP=203.0.113.1 ETH1_IP=10.0.0.2 ETH1_MASK=255.255.255.0 ONEAPP_VNF_NAT4_ENABLED=YES ONEAPP_VNF_NAT4_INTERFACES_OUT=eth0 ONEAPP_VNF_CONNTRACKD_ENABLED=YES"
	if err := (Service{}).Start(ctx, rt(f, env)); err != nil {
		t.Fatal(err)
	}
	masq, _ := f.Rules("nat", ChainMASQ)
	if d := cmp.Diff([]string{"-o eth0 -j SNAT --to-source 203.0.113.1"}, masq); d != "" {
		t.Fatal(d)
	}
	writes := f.Writes
	if err := (Service{}).Start(ctx, rt(f, env)); err != nil || f.Writes != writes {
		t.Fatalf("re-applying wrote %d times (%v)", f.Writes-writes, err)
	}
	if err := (Service{}).Start(ctx, rt(f, strings.Replace(env, "ETH0_VROUTER_IP=203.0.113.1", "ETH0_VROUTER_IP=203.0.113.9", 1))); err != nil {
		t.Fatal(err)
	}
	masq, _ = f.Rules("nat", ChainMASQ)
	if d := cmp.Diff([]string{"-o eth0 -j SNAT --to-source 203.0.113.9"}, masq); d != "" {
		t.Fatal(d)
	}
	// Without sync (or without a VIP) it masquerades as before.
	if err := (Service{}).Start(ctx, rt(f, strings.Replace(env, "CONNTRACKD_ENABLED=YES", "CONNTRACKD_ENABLED=NO", 1))); err != nil {
		t.Fatal(err)
	}
	masq, _ = f.Rules("nat", ChainMASQ)
	if d := cmp.Diff([]string{"-o eth0 -j MASQUERADE"}, masq); d != "" {
		t.Fatal(d)
	}
	if err := (Service{}).Stop(ctx, rt(f, env)); err != nil || f.Dump() != before {
		t.Fatalf("stop left rules (%v)", err)
	}
}
