package dhcp4

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// probingConn is a fake socket that also answers ARP probes: holders maps
// an address to the MAC of the host that answers for it.
type probingConn struct {
	*fakeConn
	mu      sync.Mutex
	holders map[string]string
	probed  []string
}

func (c *probingConn) Probe(_ context.Context, ip net.IP, _ time.Duration) (net.HardwareAddr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.probed = append(c.probed, ip.String())
	if h, ok := c.holders[ip.String()]; ok {
		return mustMAC(h), nil
	}
	return nil, nil
}

func (c *probingConn) probes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.probed)
}

// An address new to this server is probed before it is offered. One a host
// answers for (a client of the other router after a failover) leaves the
// pool and the client is offered the next; the client's own address, its
// MAC2IP address, renewals and relayed requests are not probed.
func TestOfferProbesNewAddresses(t *testing.T) {
	var pc *probingConn
	n := &fakeNet{conns: map[string][]*fakeConn{}, down: map[string]bool{}}
	n.wrap = func(c *fakeConn) PacketConn {
		pc = &probingConn{fakeConn: c, holders: map[string]string{"10.0.0.254": "02:00:99:99:99:01"}}
		return pc
	}
	r := startDaemon(t, n, append([]string{"ONEAPP_VNF_DHCP4_MAC2IP_ENABLED=NO"}, "ETH1_IP=10.0.0.1", "ETH1_MASK=255.255.255.0")...)
	c := r.net.conn(t, "eth1", 0)

	disc, _ := dhcpv4.NewDiscovery(mustMAC("52:54:00:00:00:01"))
	disc.SetBroadcast()
	c.in <- disc.ToBytes()
	s := reply(t, c)
	if got := s.payload.YourIPAddr.String(); got != "10.0.0.253" {
		t.Fatalf("offered %s, want 10.0.0.253 (10.0.0.254 answers ARP)", got)
	}
	if got := pc.probes(); !slices.Equal(got, []string{"10.0.0.254", "10.0.0.253"}) {
		t.Fatalf("probed %v", got)
	}
	if !strings.Contains(r.logString(), "address in use on the link") {
		t.Fatalf("the conflict is not logged:\n%s", r.logString())
	}
	// The same client asking again soon: found free a moment ago, no probe.
	c.in <- disc.ToBytes()
	if s = reply(t, c); s.payload.YourIPAddr.String() != "10.0.0.253" || len(pc.probes()) != 2 {
		t.Fatalf("second DISCOVER: offered %s, probes %v", s.payload.YourIPAddr, pc.probes())
	}
	// Its lease: ACK, and renewals, without probes.
	req, _ := dhcpv4.NewRequestFromOffer(s.payload)
	req.SetBroadcast()
	c.in <- req.ToBytes()
	s = reply(t, c)
	if s.payload.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("REQUEST: %s", s.payload.Summary())
	}
	renew, _ := dhcpv4.NewRenewFromAck(s.payload)
	c.in <- renew.ToBytes()
	reply(t, c)
	// A new client skips the address in use and the leased one.
	d2, _ := dhcpv4.NewDiscovery(mustMAC("52:54:00:00:00:02"))
	d2.SetBroadcast()
	c.in <- d2.ToBytes()
	if s = reply(t, c); s.payload.YourIPAddr.String() != "10.0.0.252" {
		t.Fatalf("second client offered %s", s.payload.YourIPAddr)
	}
	// A host answering for its own address is the client itself.
	pc.mu.Lock()
	pc.holders["10.0.0.251"] = "52:54:00:00:00:03"
	pc.mu.Unlock()
	d3, _ := dhcpv4.NewDiscovery(mustMAC("52:54:00:00:00:03"))
	d3.SetBroadcast()
	c.in <- d3.ToBytes()
	if s = reply(t, c); s.payload.YourIPAddr.String() != "10.0.0.251" {
		t.Fatalf("a client answering for its own address was offered %s", s.payload.YourIPAddr)
	}
	// Relayed: another segment, no probe.
	before := len(pc.probes())
	relayed, _ := dhcpv4.NewDiscovery(mustMAC("52:54:00:00:00:04"), dhcpv4.WithGatewayIP(net.ParseIP("10.0.0.5")))
	c.in <- relayed.ToBytes()
	reply(t, c)
	if len(pc.probes()) != before {
		t.Fatalf("a relayed DISCOVER was probed: %v", pc.probes())
	}
	// The host found holding 10.0.0.254 renews it: acknowledged (a client
	// of the other router keeps its address); anyone else asking is NAKed.
	renewBy := func(hw string) *dhcpv4.DHCPv4 {
		t.Helper()
		r, err := dhcpv4.New(dhcpv4.WithHwAddr(mustMAC(hw)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithClientIP(net.ParseIP("10.0.0.254")))
		if err != nil {
			t.Fatal(err)
		}
		c.in <- r.ToBytes()
		return reply(t, c).payload
	}
	if got := renewBy("52:54:00:00:00:09"); got.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("another client took the address in use: %s", got.Summary())
	}
	if got := renewBy("02:00:99:99:99:01"); got.MessageType() != dhcpv4.MessageTypeAck || got.YourIPAddr.String() != "10.0.0.254" {
		t.Fatalf("the holder's renewal: %s", got.Summary())
	}
}

// With MAC2IP on, a VM's own MAC2IP address is offered without a probe.
func TestOfferDoesNotProbeMAC2IP(t *testing.T) {
	var pc *probingConn
	n := &fakeNet{conns: map[string][]*fakeConn{}, down: map[string]bool{}}
	n.wrap = func(c *fakeConn) PacketConn {
		pc = &probingConn{fakeConn: c, holders: map[string]string{}}
		return pc
	}
	r := startDaemon(t, n, "ETH1_IP=10.0.0.1", "ETH1_MASK=255.255.255.0")
	c := r.net.conn(t, "eth1", 0)
	disc, _ := dhcpv4.NewDiscovery(mustMAC("02:00:0a:00:00:0c"))
	disc.SetBroadcast()
	c.in <- disc.ToBytes()
	if s := reply(t, c); s.payload.YourIPAddr.String() != "10.0.0.12" {
		t.Fatalf("offered %s", s.payload.YourIPAddr)
	}
	if p := pc.probes(); len(p) != 0 {
		t.Fatalf("probed %v", p)
	}
}

// When every address tried is in use, the client gets no OFFER this time
// (three tries), the addresses leave the pool, and its next DISCOVER is
// offered a free one.
func TestOfferGivesUpAfterThreeAddressesInUse(t *testing.T) {
	var pc *probingConn
	n := &fakeNet{conns: map[string][]*fakeConn{}, down: map[string]bool{}}
	n.wrap = func(c *fakeConn) PacketConn {
		pc = &probingConn{fakeConn: c, holders: map[string]string{
			"10.0.0.254": "02:00:99:99:99:01", "10.0.0.253": "02:00:99:99:99:02", "10.0.0.252": "02:00:99:99:99:03"}}
		return pc
	}
	r := startDaemon(t, n, "ONEAPP_VNF_DHCP4_MAC2IP_ENABLED=NO", "ETH1_IP=10.0.0.1", "ETH1_MASK=255.255.255.0")
	c := r.net.conn(t, "eth1", 0)
	disc, _ := dhcpv4.NewDiscovery(mustMAC("52:54:00:00:00:01"))
	disc.SetBroadcast()
	noReply(t, c, func() {
		c.in <- disc.ToBytes()
		waitFor(t, "three probes", func() bool { return len(pc.probes()) == 3 })
	})
	if !strings.Contains(r.logString(), "offered addresses in use on the link; no offer this time") {
		t.Fatalf("giving up is not logged:\n%s", r.logString())
	}
	c.in <- disc.ToBytes()
	if s := reply(t, c); s.payload.YourIPAddr.String() != "10.0.0.251" {
		t.Fatalf("after three addresses in use: offered %s, want 10.0.0.251", s.payload.YourIPAddr)
	}
}
