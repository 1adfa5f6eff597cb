package onecontext

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBool(t *testing.T) {
	for _, tt := range []struct {
		v       string
		def     bool
		want    bool
		wantErr bool
	}{
		{"", true, true, false}, {"", false, false, false},
		{"YES", false, true, false}, {"yes", false, true, false}, {"Yes", false, true, false},
		{"1", false, true, false}, {"true", false, true, false}, {"TRUE", false, true, false},
		{"NO", true, false, false}, {"no", true, false, false}, {"0", true, false, false}, {"False", true, false, false},
		{" YES ", false, true, false},
		{"on", false, false, true}, {"y", false, false, true}, {"2", false, false, true}, {"yes please", false, false, true},
	} {
		e := FromPairs("ONEAPP_VNF_NAT4_ENABLED=" + tt.v)
		got, err := e.Bool("ONEAPP_VNF_NAT4_ENABLED", tt.def)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Bool(%q, %v) = %v, %v", tt.v, tt.def, got, err)
		}
		if err != nil {
			var ve *VarError
			if !errors.As(err, &ve) || ve.Name != "ONEAPP_VNF_NAT4_ENABLED" || !strings.Contains(err.Error(), tt.v) {
				t.Errorf("error %q does not name the variable and value", err)
			}
		}
	}
}

func TestIntsPortsSeconds(t *testing.T) {
	e := FromPairs("A=30", "B=x", "C=0", "P=65535", "Q=65536", "R=0x1F", "S=0.1", "T=-1", "U=1_000")
	if v, err := e.Int("A", 1, 1, 100); v != 30 || err != nil {
		t.Error(v, err)
	}
	for _, n := range []string{"B", "C", "T", "U"} {
		if _, err := e.Int(n, 1, 1, 100); err == nil {
			t.Errorf("Int(%s) accepted", n)
		}
	}
	if v, _ := e.Int("MISSING", 7, 1, 100); v != 7 {
		t.Error(v)
	}
	if p, err := e.Port("P", 0); p != 65535 || err != nil {
		t.Error(p, err)
	}
	for _, n := range []string{"Q", "R", "C", "T"} {
		if _, err := e.Port(n, 0); err == nil {
			t.Errorf("Port(%s) accepted", n)
		}
	}
	if d, err := e.Seconds("S", time.Second, time.Millisecond, time.Hour); d != 100*time.Millisecond || err != nil {
		t.Error(d, err)
	}
	if _, err := e.Seconds("T", time.Second, time.Millisecond, time.Hour); err == nil {
		t.Error("negative seconds accepted")
	}
}

func TestIndexedUnbounded(t *testing.T) {
	e := FromPairs("ONEAPP_VNF_NAT4_PORT_FWD12=c", "ONEAPP_VNF_NAT4_PORT_FWD2=b", "ONEAPP_VNF_NAT4_PORT_FWD0=a",
		"ONEAPP_VNF_NAT4_PORT_FWD3=", "ONEAPP_VNF_NAT4_PORT_FWDX=x", "ONEAPP_VNF_NAT4_PORT_FWD1_EXTRA=y")
	var got []string
	for _, v := range e.Indexed("ONEAPP_VNF_NAT4_PORT_FWD") {
		got = append(got, v.Value)
	}
	if d := cmp.Diff([]string{"a", "b", "c"}, got); d != "" {
		t.Error(d)
	}
	got = nil
	for _, v := range FromPairs("ONEAPP_VNF_LB10_SERVER10_HOST=h", "ONEAPP_VNF_LB10_SERVER2_HOST=g").IndexedSuffix("ONEAPP_VNF_LB10_SERVER", "_HOST") {
		got = append(got, v.Value)
	}
	if d := cmp.Diff([]string{"g", "h"}, got); d != "" {
		t.Error(d)
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestPrefixInference(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  []string
		want netip.Prefix
	}{
		{"explicit", []string{"ETH0_IP=10.0.0.5/26", "ETH0_MASK=255.255.255.0"}, pfx("10.0.0.5/26")},
		{"explicit 0 means 32", []string{"ETH0_IP=10.0.0.5/0"}, pfx("10.0.0.5/32")},
		{"mask", []string{"ETH0_IP=10.0.0.5", "ETH0_MASK=255.255.255.192", "ETH0_NETWORK=10.0.0.0"}, pfx("10.0.0.5/26")},
		{"network octets", []string{"ETH0_IP=192.168.1.7", "ETH0_NETWORK=192.168.1.0"}, pfx("192.168.1.7/24")},
		{"network 10", []string{"ETH0_IP=10.1.2.3", "ETH0_NETWORK=10.0.0.0"}, pfx("10.1.2.3/8")},
		{"network 172.16", []string{"ETH0_IP=172.16.5.5", "ETH0_NETWORK=172.16.0.0"}, pfx("172.16.5.5/16")},
		{"network not holding ip falls back to bits", []string{"ETH0_IP=10.2.0.130", "ETH0_NETWORK=10.2.0.128"}, pfx("10.2.0.130/25")},
		{"classful 10", []string{"ETH0_IP=10.9.9.9"}, pfx("10.9.9.9/8")},
		{"classful 172.16/12 gives 16", []string{"ETH0_IP=172.20.0.5"}, pfx("172.20.0.5/16")},
		{"172.32 is not private", []string{"ETH0_IP=172.32.0.5"}, pfx("172.32.0.5/24")},
		{"classful 192.168", []string{"ETH0_IP=192.168.7.1"}, pfx("192.168.7.1/24")},
		{"public", []string{"ETH0_IP=203.0.113.9"}, pfx("203.0.113.9/24")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			top, err := FromPairs(tt.env...).Topology()
			if err != nil {
				t.Fatal(err)
			}
			if got := top.NICs[0].IP; got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTopologyErrors(t *testing.T) {
	for _, tt := range []struct{ env, wantVar string }{
		{"ETH0_IP=10.0.0", "ETH0_IP"},
		{"ETH0_IP=10.0.0.1/33", "ETH0_IP"},
		{"ETH0_MASK=255.0.255.0", "ETH0_MASK"},
		{"ETH0_VROUTER_IP=nope", "ETH0_VROUTER_IP"},
		{"ONEAPP_VROUTER_ETH0_VIP3=1.2.3", "ONEAPP_VROUTER_ETH0_VIP3"},
		{"ETH0_VROUTER_MANAGEMENT=maybe", "ETH0_VROUTER_MANAGEMENT"},
		{"ETH0_GATEWAY=x", "ETH0_GATEWAY"},
	} {
		_, err := FromPairs("ETH0_IP=10.0.0.1", tt.env).Topology()
		var ve *VarError
		if !errors.As(err, &ve) || ve.Name != tt.wantVar {
			t.Errorf("%s: error %v does not name %s", tt.env, err, tt.wantVar)
		}
	}
}

// routerEnv is a router with a public NIC, a private one with VIPs, a
// floating-only NIC, a management NIC and eth10.
func routerEnv() Env {
	return FromPairs(
		"ETH0_IP=203.0.113.2", "ETH0_MASK=255.255.255.0", "ETH0_VROUTER_IP=203.0.113.1",
		"ETH1_IP=10.0.0.2", "ETH1_MASK=255.255.255.0", "ETH1_VROUTER_IP=10.0.0.100", "ONEAPP_VROUTER_ETH1_VIP0=10.0.0.1", "ONEAPP_VROUTER_ETH1_VIP10=10.0.0.10",
		"ETH2_MAC=02:00:c0:a8:00:01", "ETH2_VROUTER_IP=192.168.0.1",
		"ETH3_IP=172.16.0.5", "ETH3_VROUTER_MANAGEMENT=YES",
		"ETH10_IP=", "ETH10_MAC=02:00:00:00:00:10",
	)
}

func TestTopology(t *testing.T) {
	top, err := routerEnv().Topology()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"eth0", "eth1", "eth2", "eth3", "eth10"}, top.Names()); d != "" {
		t.Error("NIC order:", d)
	}
	if d := cmp.Diff([]string{"eth3"}, top.Management()); d != "" {
		t.Error(d)
	}
	eth1, _ := top.NIC("eth1")
	if d := cmp.Diff([]VIP{{0, pfx("10.0.0.1/24")}, {10, pfx("10.0.0.10/24")}}, eth1.VIPs, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Error("ONEAPP_VROUTER_ETH1_VIP0 must override ETH1_VROUTER_IP:", d)
	}
	eth2, _ := top.NIC("eth2")
	if eth2.HasIP() || eth2.Subnet() != pfx("192.168.0.0/24") {
		t.Errorf("floating-only NIC: %+v subnet %v", eth2, eth2.Subnet())
	}
	ph := top.Placeholders()
	for k, want := range map[string]string{
		"ETH0_IP0": "203.0.113.2/24", "ETH0_VIP0": "203.0.113.1/24", "ETH0_EP0": "203.0.113.1/24",
		"ETH1_EP10": "10.0.0.10/24", "ETH2_EP0": "192.168.0.1/24", "ETH3_EP0": "172.16.0.5/16",
	} {
		if got := ph[k]; got != pfx(want) {
			t.Errorf("%s = %v, want %s", k, got, want)
		}
	}
	for _, k := range []string{"ETH2_IP0", "ETH0_IP1", "ETH10_EP0"} {
		if _, ok := ph[k]; ok {
			t.Errorf("%s should not exist", k)
		}
	}
}

func TestResolveAddr(t *testing.T) {
	top, _ := routerEnv().Topology()
	for in, want := range map[string]string{"<ETH0_EP0>": "203.0.113.1", "<ETH0_IP0>": "203.0.113.2", " <ETH1_VIP10> ": "10.0.0.10", "1.2.3.4": "1.2.3.4"} {
		got, err := top.ResolveAddr(in)
		if err != nil || got.String() != want {
			t.Errorf("ResolveAddr(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"<ETH5_EP0>", "<ETH0_IP1>", "<ETH0_FOO0>", "<eth0_ep0>", "host", "1.2.3.4/24", "::1"} {
		if _, err := top.ResolveAddr(in); err == nil {
			t.Errorf("ResolveAddr(%q) resolved", in)
		}
	}
}

func TestInterfaces(t *testing.T) {
	top, _ := routerEnv().Topology()
	ref := func(nic, addr string, port uint16) IfaceRef {
		r := IfaceRef{NIC: nic, Port: port}
		if addr != "" {
			r.Addr = netip.MustParseAddr(addr)
		}
		return r
	}
	for _, tt := range []struct {
		name, value string
		empty       EmptyMeans
		want        []string
		refs        map[string][]IfaceRef
		wantErr     string
	}{
		{"empty means all", "", EmptyAll, []string{"eth0", "eth1", "eth2", "eth3", "eth10"}, nil, ""},
		{"empty means none", "", EmptyNone, nil, nil, ""},
		{"blank means none", "  ", EmptyNone, nil, nil, ""},
		{"sorted numerically", "eth10 eth2,eth0", EmptyAll, []string{"eth0", "eth2", "eth10"}, nil, ""},
		{"separators", "eth1;eth0,,eth2  ", EmptyAll, []string{"eth0", "eth1", "eth2"}, nil, ""},
		{"duplicates once", "eth1 eth0 eth1", EmptyAll, []string{"eth0", "eth1"}, nil, ""},
		{"exclusion only", "!eth2", EmptyNone, []string{"eth0", "eth1", "eth3", "eth10"}, nil, ""},
		{"exclusion with includes", "eth0 eth1 !eth1", EmptyAll, []string{"eth0"}, nil, ""},
		{"bare IP", "10.0.0.2", EmptyAll, []string{"eth1"}, map[string][]IfaceRef{"eth1": {ref("eth1", "10.0.0.2", 0)}}, ""},
		{"bare VIP", "192.168.0.1@53", EmptyAll, []string{"eth2"}, map[string][]IfaceRef{"eth2": {ref("eth2", "192.168.0.1", 53)}}, ""},
		{"exclude by IP excludes NIC", "!10.0.0.1", EmptyAll, []string{"eth0", "eth2", "eth3", "eth10"}, nil, ""},
		{"parts", "eth0/203.0.113.1@5353 eth0/ eth1@53", EmptyAll, []string{"eth0", "eth1"},
			map[string][]IfaceRef{"eth0": {ref("eth0", "203.0.113.1", 5353), ref("eth0", "", 0)}, "eth1": {ref("eth1", "", 53)}}, ""},
		{"upper case name", "ETH1", EmptyAll, []string{"eth1"}, nil, ""},
		{"unknown NIC", "eth0 eth7", EmptyAll, nil, nil, "no NIC eth7"},
		{"unknown IP", "8.8.8.8", EmptyAll, nil, nil, "no NIC of the context holds 8.8.8.8"},
		{"garbage", "eth0;touch /tmp/x", EmptyAll, nil, nil, `item "touch"`},
		{"bad port", "eth0@99999", EmptyAll, nil, nil, "port"},
		{"shell", "$(reboot)", EmptyAll, nil, nil, "neither"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := top.Interfaces("ONEAPP_VNF_X_INTERFACES", tt.value, tt.empty)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "ONEAPP_VNF_X_INTERFACES=") {
					t.Fatalf("err = %v, want %q naming the variable", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, sel.NICs); d != "" {
				t.Error(d)
			}
			if tt.refs != nil {
				if d := cmp.Diff(tt.refs, sel.Refs, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
					t.Error(d)
				}
			}
		})
	}
	sel, _ := top.Interfaces("X", "", EmptyAll)
	unmanaged, dropped := sel.WithoutManagement(top)
	if d := cmp.Diff([]string{"eth3"}, dropped); d != "" || unmanaged.Has("eth3") {
		t.Error("management NIC not dropped", d)
	}
}

func TestSecretsNotShown(t *testing.T) {
	err := Errorf("ONEAPP_VNF_KEEPALIVED_PASSWORD", "hunter2hunter2", "longer than 8 characters")
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatal("secret printed:", err)
	}
}

func FuzzInterfaces(f *testing.F) {
	for _, s := range []string{"", "eth0", "!eth1 eth0/1.2.3.4@53", "10.0.0.2;eth10", "eth0/@", "@", "!", "/", "eth99999999999", "ETH0/::1@0"} {
		f.Add(s)
	}
	top, _ := routerEnv().Topology()
	f.Fuzz(func(t *testing.T, v string) {
		sel, err := top.Interfaces("V", v, EmptyAll)
		if err != nil {
			var ve *VarError
			if !errors.As(err, &ve) || ve.Name != "V" {
				t.Fatalf("error does not name the variable: %v", err)
			}
			return
		}
		for i, n := range sel.NICs {
			if _, ok := top.NIC(n); !ok {
				t.Fatalf("selected unknown NIC %q", n)
			}
			if i > 0 {
				a, _ := top.NIC(sel.NICs[i-1])
				b, _ := top.NIC(n)
				if a.Index >= b.Index {
					t.Fatalf("not sorted: %v", sel.NICs)
				}
			}
		}
	})
}

func FuzzNICDigits(f *testing.F) {
	for _, s := range []string{"ETH0_IP", "ETH10_VROUTER_IP", "ONEAPP_VROUTER_ETH1_VIP10", "ONEAPP_VROUTER_ETH1_VIPX", "ETH_IP", "ETH1", "ETHX_IP"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		d, ok := nicDigits(k)
		var want string
		if m := nicVar.FindStringSubmatch(k); m != nil {
			want = m[1]
		} else if m := onevipVar.FindStringSubmatch(k); m != nil {
			if _, isNum := index(m[2]); isNum {
				want = m[1]
			}
		}
		if ok != (want != "") || d != want {
			t.Fatalf("%q: nicDigits=%q,%v regexps=%q", k, d, ok, want)
		}
	})
}
