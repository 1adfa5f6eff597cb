package wg

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

// guideEnv is the guide's quick start: eth0 public (with a VIP), eth1 the
// private network.
const guideEnv = "ETH0_IP=203.0.113.2 ETH0_MASK=255.255.255.0 ETH0_VROUTER_IP=203.0.113.1 " +
	"ETH1_IP=10.0.0.2 ETH1_MASK=255.255.255.0 ETH1_VROUTER_IP=10.0.0.1 " +
	"ONEAPP_VNF_WG_ENABLED=YES ONEAPP_VNF_WG_INTERFACE_OUT=eth0 ONEAPP_VNF_WG_INTERFACE_IN=eth1"

func env(s string, more ...string) onecontext.Env {
	return onecontext.FromPairs(append(strings.Fields(s), more...)...)
}

func TestAddressing(t *testing.T) {
	for _, tt := range []struct {
		subnet         string
		peers          []int
		server         string
		want           []string
		lastPeerOffset int64
	}{
		{"169.254.33.0/24", []int{0, 1, 4, 252}, "169.254.33.1/24", []string{"169.254.33.2", "169.254.33.3", "169.254.33.6", "169.254.33.254"}, 254},
		// Host bits are cleared; peers cross octet boundaries.
		{"10.8.0.77/16", []int{0, 253, 254, 300}, "10.8.0.1/16", []string{"10.8.0.2", "10.8.0.255", "10.8.1.0", "10.8.1.46"}, 302},
		{"192.168.7.4/30", []int{0}, "192.168.7.5/30", []string{"192.168.7.6"}, 2},
	} {
		sub, err := parseSubnet(tt.subnet)
		must(t, err)
		s := Spec{Subnet: sub}
		if got := s.Server().String(); got != tt.server {
			t.Errorf("%s: server %s, want %s", tt.subnet, got, tt.server)
		}
		var got []string
		for _, i := range tt.peers {
			got = append(got, s.PeerAddr(i).String())
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("%s: peers (-want +got):\n%s", tt.subnet, d)
		}
		if o := offset(sub.Addr(), s.PeerAddr(tt.peers[len(tt.peers)-1])); o != tt.lastPeerOffset {
			t.Errorf("%s: offset %d, want %d", tt.subnet, o, tt.lastPeerOffset)
		}
	}
	if o := offset(netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.0.4")); o != -1 {
		t.Errorf("offset below the base = %d", o)
	}
}

func TestFromContext(t *testing.T) {
	s, err := FromContext(env(guideEnv))
	must(t, err)
	want := Spec{
		Enabled: true, Device: "wg0", Port: 51820, Peers: 5, Subnet: netip.MustParsePrefix("169.254.33.0/24"),
		Out: "eth0", In: "eth1", Endpoint: netip.MustParseAddr("203.0.113.1"), Private: netip.MustParsePrefix("10.0.0.0/24"),
	}
	if d := cmp.Diff(want, s, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("guide context (-want +got):\n%s", d)
	}
	// Without a VIP the endpoint is the NIC's own address; values as given.
	s, err = FromContext(env("ETH0_IP=198.51.100.7 ETH1_IP=192.168.1.1 ETH1_MASK=255.255.255.0 ONEAPP_VNF_WG_ENABLED=yes ONEAPP_VNF_WG_INTERFACE_OUT=ETH0 " +
		"ONEAPP_VNF_WG_INTERFACE_IN=eth1 ONEAPP_VNF_WG_LISTEN_PORT=443 ONEAPP_VNF_WG_PEERS=10 ONEAPP_VNF_WG_SUBNET=10.99.0.9/28 ONEAPP_VNF_WG_DEVICE=vpn_1"))
	must(t, err)
	if s.Endpoint.String() != "198.51.100.7" || s.Port != 443 || s.Peers != 10 || s.Subnet.String() != "10.99.0.0/28" || s.Device != "vpn_1" || s.Private.String() != "192.168.1.0/24" {
		t.Errorf("overrides: %+v", s)
	}
	// Disabled: nothing else is read, but the device name is.
	s, err = FromContext(env("ONEAPP_VNF_WG_INTERFACE_OUT=garbage ONEAPP_VNF_WG_DEVICE=tun7"))
	if err != nil || s.Enabled || s.Device != "tun7" {
		t.Errorf("disabled: %+v %v", s, err)
	}
}

// Bad input exits 2 naming the variable (and never half-applies: parsing
// comes first).
func TestFromContextBadInput(t *testing.T) {
	for _, tt := range []struct {
		name, env, variable, msg string
	}{
		{"missing OUT", "ONEAPP_VNF_WG_INTERFACE_OUT=", VarInterfaceOut, "required"},
		{"missing IN", "ONEAPP_VNF_WG_INTERFACE_IN=", VarInterfaceIn, "required"},
		{"unknown OUT", "ONEAPP_VNF_WG_INTERFACE_OUT=eth7", VarInterfaceOut, "no NIC eth7"},
		{"OUT not a NIC", "ONEAPP_VNF_WG_INTERFACE_OUT=203.0.113.2", VarInterfaceOut, "not a NIC name"},
		{"management OUT", "ETH0_VROUTER_MANAGEMENT=YES", VarInterfaceOut, "management NIC"},
		{"management IN", "ETH1_VROUTER_MANAGEMENT=YES", VarInterfaceIn, "management NIC"},
		{"IN without address", "ETH2_MAC=02:00:00:00:00:02 ONEAPP_VNF_WG_INTERFACE_IN=eth2", VarInterfaceIn, "no address"},
		{"port 0", "ONEAPP_VNF_WG_LISTEN_PORT=0", VarListenPort, "1-65535"},
		{"port 65536", "ONEAPP_VNF_WG_LISTEN_PORT=65536", VarListenPort, "1-65535"},
		{"port hex", "ONEAPP_VNF_WG_LISTEN_PORT=0x1F", VarListenPort, "1-65535"},
		{"peers 0", "ONEAPP_VNF_WG_PEERS=0", VarPeers, "out of range"},
		{"peers negative", "ONEAPP_VNF_WG_PEERS=-3", VarPeers, "out of range"},
		{"peers word", "ONEAPP_VNF_WG_PEERS=five", VarPeers, "not a whole number"},
		{"peers too many", "ONEAPP_VNF_WG_PEERS=251", VarPeers, "out of range"},
		{"subnet too small", "ONEAPP_VNF_WG_SUBNET=10.9.0.0/29 ONEAPP_VNF_WG_PEERS=6", VarSubnet, "room for 6 addresses"},
		{"subnet /31", "ONEAPP_VNF_WG_SUBNET=10.9.0.0/31", VarSubnet, "no room"},
		{"subnet IPv6", "ONEAPP_VNF_WG_SUBNET=fd00::/64", VarSubnet, "not IPv4"},
		{"subnet garbage", "ONEAPP_VNF_WG_SUBNET=10.9.0.0", VarSubnet, "CIDR"},
		{"subnet overlaps IN", "ONEAPP_VNF_WG_SUBNET=10.0.0.128/25", VarSubnet, "overlaps eth1"},
		{"device too long", "ONEAPP_VNF_WG_DEVICE=wireguard-device0", VarDevice, "not an interface name"},
		{"device injection", "ONEAPP_VNF_WG_DEVICE=wg0';reboot'", VarDevice, "not an interface name"},
		{"device a NIC", "ONEAPP_VNF_WG_DEVICE=eth1", VarDevice, "the name of a NIC"},
		{"enabled garbage", "ONEAPP_VNF_WG_ENABLED=sure", VarEnabled, "boolean"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromContext(env(guideEnv, strings.Fields(tt.env)...))
			if err == nil {
				t.Fatal("accepted")
			}
			if cli.ExitCode(err) != 2 {
				t.Errorf("exit %d: %v", cli.ExitCode(err), err)
			}
			var ve *onecontext.VarError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tt.variable+"=") || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not name %s with %q", err, tt.variable, tt.msg)
			}
		})
	}
}
