package sdnat4

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/onegate"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// guideEnv is the router of the user guide's SDNAT4 example with the
// fixture networks: eth0 on public 203.0.113.0/24, eth1 on private
// 10.0.1.0/24, eth2 a management NIC.
const guideEnv = "ETH0_IP=203.0.113.2 ETH0_MASK=255.255.255.0 ETH0_VROUTER_IP=203.0.113.1 " +
	"ETH1_IP=10.0.1.2 ETH1_MASK=255.255.255.0 ETH1_VROUTER_IP=10.0.1.1 " +
	"ETH2_IP=192.168.50.1 ETH2_MASK=255.255.255.0 ETH2_VROUTER_MANAGEMENT=YES " +
	"ONEAPP_VNF_SDNAT4_ENABLED=YES ONEAPP_VNF_SDNAT4_INTERFACES=eth0,eth1 " +
	"ONEGATE_ENDPOINT=http://onegate.invalid:5030 TOKENTXT=golden-token VMID=10"

func spec(t *testing.T, env string) Spec {
	t.Helper()
	s, err := FromContext(onecontext.FromPairs(strings.Fields(env)...), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func vnets(t *testing.T, docs ...string) []onegate.VNet {
	t.Helper()
	var out []onegate.VNet
	for _, d := range docs {
		n, err := onegate.DecodeVNet([]byte(d))
		if err != nil {
			t.Fatalf("%v\n%s", err, d)
		}
		out = append(out, *n)
	}
	return out
}

func pairs(maps []Mapping) []string {
	var out []string
	for _, m := range maps {
		out = append(out, m.String()+" vm"+strconv.Itoa(m.VM)+" in="+m.In+" out="+m.Out)
	}
	return out
}

// The reference's shapes (§2.9): AR and LEASE arrays, EXTERNAL a JSON
// boolean, PARENT_NETWORK_ID a string; numbers as strings.
const (
	public = `{"VNET": {"ID": "0", "NAME": "public", "PARENT_NETWORK_ID": {}, "AR_POOL": {"AR": [{"AR_ID": "0", "LEASES": {"LEASE": [
		{"IP": "203.0.113.1", "MAC": "02:00:cb:00:71:01", "VROUTER": "3"},
		{"IP": "203.0.113.2", "MAC": "02:00:cb:00:71:02", "VM": "10", "NIC_NAME": "NIC0"},
		{"IP": "203.0.113.20", "MAC": "02:00:cb:00:71:14", "VM": "20", "NIC_NAME": "NIC0_ALIAS1", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "203.0.113.21", "MAC": "02:00:cb:00:71:15", "VM": "21", "NIC_NAME": "NIC1_ALIAS2", "PARENT": "NIC1", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "203.0.113.30", "MAC": "02:00:cb:00:71:1e", "VM": "30", "NIC_NAME": "NIC0_ALIAS1", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": false}
	]}}]}}}`
	private = `{"VNET": {"ID": "1", "NAME": "private", "PARENT_NETWORK_ID": {}, "AR_POOL": {"AR": [{"AR_ID": "0", "LEASES": {"LEASE": [
		{"IP": "10.0.1.1", "VROUTER": "3"},
		{"IP": "10.0.1.2", "VM": "10", "NIC_NAME": "NIC1"},
		{"IP": "10.0.1.20", "VM": "20", "NIC_NAME": "NIC0"},
		{"IP": "10.0.1.120", "VM": "20", "NIC_NAME": "NIC0_ALIAS3", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1"},
		{"IP": "10.0.1.21", "VM": "21", "NIC_NAME": "NIC0"},
		{"IP": "10.0.1.22", "VM": "21", "NIC_NAME": "NIC1"},
		{"IP": "10.0.1.30", "VM": "30", "NIC_NAME": "NIC0"}
	]}}]}}}`
)

func TestDiscoverGuideShapes(t *testing.T) {
	maps, skips := Discover(vnets(t, public, private), spec(t, guideEnv))
	want := []string{
		"203.0.113.20 -> 10.0.1.20 vm20 in=eth1 out=eth0", // VM 20: its NIC0, not its private alias
		"203.0.113.21 -> 10.0.1.22 vm21 in=eth1 out=eth0", // VM 21: the parent NIC1, not NIC0
	}
	if d := cmp.Diff(want, pairs(maps)); d != "" {
		t.Error(d)
	}
	if len(skips) != 0 {
		t.Errorf("skips: %v", skips)
	}
	if maps[0].Lease != "vnet 0 AR 0 lease 2 (IP 203.0.113.20, VM 20, NIC0_ALIAS1)" {
		t.Errorf("lease name %q", maps[0].Lease)
	}
}

// The OpenNebula XML-to-JSON shapes the server does not normalise: a single
// AR and a single LEASE as objects, EXTERNAL as "YES", IDs as numbers.
func TestDiscoverSingleObjects(t *testing.T) {
	pub := `{"VNET": {"ID": 0, "AR_POOL": {"AR": {"AR_ID": 0, "LEASES": {"LEASE":
		{"IP": "203.0.113.20", "VM": 20, "PARENT": "NIC0", "PARENT_NETWORK_ID": 1, "EXTERNAL": "YES"}}}}}}`
	priv := `{"VNET": {"ID": "1", "AR_POOL": {"AR": {"AR_ID": "0", "LEASES": {"LEASE": {"IP": "10.0.1.20", "VM": "20"}}}}}}`
	maps, skips := Discover(vnets(t, pub, priv), spec(t, guideEnv))
	if d := cmp.Diff([]string{"203.0.113.20 -> 10.0.1.20 vm20 in=eth1 out=eth0"}, pairs(maps)); d != "" || len(skips) != 0 {
		t.Errorf("%s %v", d, skips)
	}
}

// Nested networks: the public address comes from a reservation of the
// public network, and the VM's parent NIC is on a reservation of a
// reservation of the private network. Discovery follows them all.
func TestDiscoverNestedParentNetworks(t *testing.T) {
	gate := newSim(t, map[string]string{
		"vrouter": `{"VROUTER": {"ID": "3", "NAME": "vr", "VMS": {"ID": ["10"]}, "TEMPLATE": {"NIC": [{"NIC_ID": "0", "NETWORK_ID": "0"}, {"NIC_ID": "1", "NETWORK_ID": "1"}]}}}`,
		"vnet-0":  `{"VNET": {"ID": "0", "PARENT_NETWORK_ID": {}, "AR_POOL": {"AR": [{"AR_ID": "0", "LEASES": {"LEASE": [{"IP": "203.0.113.60", "VNET": "5"}]}}]}}}`,
		"vnet-1":  `{"VNET": {"ID": "1", "PARENT_NETWORK_ID": {}, "AR_POOL": {"AR": [{"AR_ID": "0", "LEASES": {"LEASE": [{"IP": "10.0.1.70", "VNET": "6"}]}}]}}}`,
		"vnet-5":  `{"VNET": {"ID": "5", "PARENT_NETWORK_ID": "0", "AR_POOL": {"AR": [{"AR_ID": "0", "LEASES": {"LEASE": [{"IP": "203.0.113.60", "VM": "40", "NIC_NAME": "NIC0_ALIAS1", "PARENT": "NIC0", "PARENT_NETWORK_ID": "7", "EXTERNAL": true}]}}]}}}`,
		"vnet-6":  `{"VNET": {"ID": "6", "PARENT_NETWORK_ID": "1", "AR_POOL": {"AR": [{"AR_ID": "0", "LEASES": {"LEASE": [{"IP": "10.0.1.70", "VNET": "7"}]}}]}}}`,
		"vnet-7":  `{"VNET": {"ID": "7", "PARENT_NETWORK_ID": "6", "AR_POOL": {"AR": [{"AR_ID": "0", "LEASES": {"LEASE": [{"IP": "10.0.1.70", "VM": "40", "NIC_NAME": "NIC0"}]}}]}}}`,
	})
	nets, err := gate.Networks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	maps, skips := Discover(nets, spec(t, guideEnv))
	if d := cmp.Diff([]string{"203.0.113.60 -> 10.0.1.70 vm40 in=eth1 out=eth0"}, pairs(maps)); d != "" || len(skips) != 0 {
		t.Errorf("%s %v", d, skips)
	}
}

func TestDiscoverSkips(t *testing.T) {
	pub := `{"VNET": {"ID": "0", "AR_POOL": {"AR": [{"AR_ID": "0", "LEASES": {"LEASE": [
		{"IP": "203.0.113.40", "VM": "40", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "not-an-ip", "VM": "41", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "2001:db8::1", "VM": "41", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "203.0.113.42", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "203.0.113.43", "VM": "43", "PARENT": "NIC0", "EXTERNAL": true},
		{"IP": "203.0.113.44", "VM": "44", "PARENT": "NIC0", "PARENT_NETWORK_ID": "99", "EXTERNAL": true},
		{"IP": "203.0.113.45", "VM": "45", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "203.0.113.46", "VM": "46", "PARENT": "NIC0", "PARENT_NETWORK_ID": "2", "EXTERNAL": true},
		{"IP": "203.0.113.1", "VM": "47", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "203.0.113.48", "VM": "48", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "203.0.113.48", "VM": "49", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "192.168.50.9", "VM": "50", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		"garbage",
		{"IP": "203.0.113.51", "VM": "51", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "0.0.0.0", "VM": "40", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "255.255.255.255", "VM": "40", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "224.0.0.9", "VM": "40", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "127.0.0.9", "VM": "40", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "169.254.3.3", "VM": "40", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true}
	]}}]}}}`
	priv := `{"VNET": {"ID": "1", "AR_POOL": {"AR": [{"AR_ID": "0", "LEASES": {"LEASE": [
		{"IP": "10.0.1.40", "VM": "40"}, {"IP": "10.0.1.47", "VM": "47"}, {"IP": "10.0.1.48", "VM": "48"},
		{"IP": "10.0.1.49", "VM": "49"}, {"IP": "10.0.1.50", "VM": "50"}, {"IP": "10.0.1.2", "VM": "51"},
		{"IP": "10.0.1.45", "VM": "99"}
	]}}]}}}`
	other := `{"VNET": {"ID": "2", "AR_POOL": {"AR": [{"AR_ID": "0", "LEASES": {"LEASE": [{"IP": "10.9.0.46", "VM": "46"}]}}]}}}`
	maps, skips := Discover(vnets(t, pub, priv, other), spec(t, guideEnv))
	if d := cmp.Diff([]string{"203.0.113.40 -> 10.0.1.40 vm40 in=eth1 out=eth0"}, pairs(maps)); d != "" {
		t.Error("the valid lease is still mapped:", d)
	}
	var got []string
	for _, s := range skips {
		got = append(got, s.String())
	}
	want := []string{
		"vnet 0 AR 0 lease 1 (no IP, VM 41): no valid IPv4 address (SDNAT4 maps IPv4 only)",
		"vnet 0 AR 0 lease 2 (IP 2001:db8::1, VM 41): no valid IPv4 address (SDNAT4 maps IPv4 only)",
		"vnet 0 AR 0 lease 3 (IP 203.0.113.42): held by no VM",
		"vnet 0 AR 0 lease 4 (IP 203.0.113.43, VM 43): names no parent network (PARENT_NETWORK_ID)",
		"vnet 0 AR 0 lease 5 (IP 203.0.113.44, VM 44): its parent network 99 is not one of this router's networks",
		"vnet 0 AR 0 lease 6 (IP 203.0.113.45, VM 45): VM 45 has no lease on the alias's parent network 1",
		"vnet 0 AR 0 lease 7 (IP 203.0.113.46, VM 46): the parent lease 10.9.0.46 is outside the SDNAT4 subnets (203.0.113.0/24 on eth0, 10.0.1.0/24 on eth1)",
		"vnet 0 AR 0 lease 8 (IP 203.0.113.1, VM 47): 203.0.113.1 is one of the router's own addresses",
		"vnet 0 AR 0 lease 11 (IP 192.168.50.9, VM 50): 192.168.50.9 lies in a management network",
		"vnet 0 AR 0 lease 13 (IP 203.0.113.51, VM 51): the parent lease 10.0.1.2 is one of the router's own addresses",
		"vnet 0 AR 0 lease 14 (IP 0.0.0.0, VM 40): 0.0.0.0 is not a unicast address",
		"vnet 0 AR 0 lease 15 (IP 255.255.255.255, VM 40): 255.255.255.255 is not a unicast address",
		"vnet 0 AR 0 lease 16 (IP 224.0.0.9, VM 40): 224.0.0.9 is not a unicast address",
		"vnet 0 AR 0 lease 17 (IP 127.0.0.9, VM 40): 127.0.0.9 is not a unicast address",
		"vnet 0 AR 0 lease 18 (IP 169.254.3.3, VM 40): 169.254.3.3 is not a unicast address",
		"vnet 0 AR 0 lease 9 (IP 203.0.113.48, VM 48): 203.0.113.48 is claimed by 2 leases mapping it to different addresses; none is mapped",
		"vnet 0 AR 0 lease 10 (IP 203.0.113.48, VM 49): 203.0.113.48 is claimed by 2 leases mapping it to different addresses; none is mapped",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Error(d)
	}
	for _, s := range skips {
		if s.Foreign != strings.Contains(s.Reason, "not one of this router's networks") {
			t.Errorf("%s: foreign=%t", s, s.Foreign)
		}
	}
}

// An alias with no parent lease (its parent NIC's network lists no lease
// of that VM) and a VM with two public addresses: both addresses map, the
// VM leaves with the first.
func TestDiscoverAliasWithoutParentLeaseAndTwoPublicAddresses(t *testing.T) {
	pub := `{"VNET": {"ID": "0", "AR_POOL": {"AR": [{"AR_ID": "0", "LEASES": {"LEASE": [
		{"IP": "203.0.113.72", "VM": "70", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "203.0.113.71", "VM": "70", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true},
		{"IP": "203.0.113.80", "VM": "80", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true}
	]}}]}}}`
	priv := `{"VNET": {"ID": "1", "AR_POOL": {"AR": [{"AR_ID": "0", "LEASES": {"LEASE": [
		{"IP": "10.0.1.70", "VM": "70"},
		{"IP": "10.0.1.80", "VM": "80", "PARENT": "NIC1", "PARENT_NETWORK_ID": "1"}
	]}}]}}}`
	s := spec(t, guideEnv)
	maps, skips := Discover(vnets(t, pub, priv), s)
	if d := cmp.Diff([]string{"203.0.113.71 -> 10.0.1.70 vm70 in=eth1 out=eth0", "203.0.113.72 -> 10.0.1.70 vm70 in=eth1 out=eth0"}, pairs(maps)); d != "" {
		t.Error(d)
	}
	if len(skips) != 1 || !strings.Contains(skips[0].String(), "VM 80 has no lease on the alias's parent network 1") {
		t.Errorf("skips: %v", skips)
	}
	snat := Render(s, maps).Rules.Tables[0].Chains[1].Rules
	if !strings.Contains(strings.Join(snat, "\n"), "-s 10.0.1.70/32 -j SNAT --to-source 203.0.113.71") || strings.Contains(strings.Join(snat, "\n"), "--to-source 203.0.113.72") {
		t.Errorf("SNAT4:\n%s", strings.Join(snat, "\n"))
	}
}

// With SDNAT4_INTERFACES unset nothing is ever mapped (empty means none,
// as in the original); only the private NIC listed is enough.
func TestDiscoverInterfaces(t *testing.T) {
	nets := vnets(t, public, private)
	unset := strings.Replace(guideEnv, "ONEAPP_VNF_SDNAT4_INTERFACES=eth0,eth1", "", 1)
	if maps, skips := Discover(nets, spec(t, unset)); len(maps) != 0 || len(skips) != 2 ||
		!strings.Contains(skips[0].Reason, "none: "+VarInterfaces+" selects no NIC") {
		t.Errorf("unset: %v %v", maps, skips)
	}
	only := strings.Replace(guideEnv, "eth0,eth1", "eth1", 1)
	if maps, _ := Discover(nets, spec(t, only)); len(maps) != 2 || maps[0].Out != "eth0" {
		t.Errorf("eth1 only: %v", pairs(maps))
	}
	mgmt := strings.Replace(guideEnv, "eth0,eth1", "eth2", 1)
	s := spec(t, mgmt)
	if maps, _ := Discover(nets, s); len(maps) != 0 || len(s.Skipped) != 1 {
		t.Errorf("management only: %v %v", pairs(maps), s.Skipped)
	}
}

// newSim serves documents (and nothing else) like OneGate.
func newSim(t *testing.T, docs map[string]string) *onegate.Client {
	t.Helper()
	s := sim.New(t.TempDir(), "t")
	for name, d := range docs {
		s.SetDocument(name, []byte(d))
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	u, err := onegate.ParseEndpoint(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := onegate.New(onegate.Config{Endpoint: u, Token: "t", VMID: 10, Attempts: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
