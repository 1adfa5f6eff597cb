package dhcp4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/hypercx/vrouter/pkg/dhcp4/onelease"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

// sent is one datagram the server sent.
type sent struct {
	to      string // "udp <addr>" or "frame <hw> <ip>"
	payload *dhcpv4.DHCPv4
}

// fakeConn is a NIC's socket: tests push requests in and read replies out.
type fakeConn struct {
	in     chan []byte
	out    chan sent
	closed chan struct{}
	once   sync.Once
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan []byte, 16), out: make(chan sent, 16), closed: make(chan struct{})}
}

func (c *fakeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-c.in:
		return copy(b, p), &net.UDPAddr{IP: net.IPv4zero, Port: 68}, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *fakeConn) record(to string, b []byte) error {
	d, err := dhcpv4.FromBytes(b)
	if err != nil {
		return err
	}
	c.out <- sent{to, d}
	return nil
}

func (c *fakeConn) WriteTo(b []byte, to *net.UDPAddr) error { return c.record("udp "+to.String(), b) }
func (c *fakeConn) WriteUnicast(b []byte, hw net.HardwareAddr, ip, src net.IP) error {
	return c.record(fmt.Sprintf("frame %s %s from %s", hw, ip, src), b)
}
func (c *fakeConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

func (c *fakeConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// fakeNet hands out fake sockets; NICs in down fail to listen.
type fakeNet struct {
	mu    sync.Mutex
	conns map[string][]*fakeConn
	down  map[string]bool
	// wrap, when set, gives the server another socket around the fake
	// (one that also probes).
	wrap func(*fakeConn) PacketConn
}

func (n *fakeNet) listen(nic string, _ net.UDPAddr) (PacketConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down[nic] {
		return nil, errors.New("no such interface " + nic)
	}
	c := newFakeConn()
	n.conns[nic] = append(n.conns[nic], c)
	if n.wrap != nil {
		return n.wrap(c), nil
	}
	return c, nil
}

func (n *fakeNet) conn(t *testing.T, nic string, i int) *fakeConn {
	t.Helper()
	var c *fakeConn
	waitFor(t, nic+" listening", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		if len(n.conns[nic]) > i {
			c = n.conns[nic][i]
			return true
		}
		return false
	})
	return c
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func reply(t *testing.T, c *fakeConn) sent {
	t.Helper()
	select {
	case s := <-c.out:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no reply")
	}
	return sent{}
}

func noReply(t *testing.T, c *fakeConn, after func()) {
	t.Helper()
	// A request that must go unanswered is followed by one that must be
	// answered: the server handles a NIC's requests in order, so the first
	// reply seen must be the second one's.
	after()
	probe, _ := dhcpv4.NewInform(mustMAC("02:00:0a:00:00:c8"), net.ParseIP("10.0.0.200"))
	probe.SetBroadcast()
	c.in <- probe.ToBytes()
	if s := reply(t, c); s.payload.TransactionID != probe.TransactionID {
		t.Fatalf("unexpected reply %s", s.payload.Summary())
	}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

type daemonRig struct {
	t      *testing.T
	net    *fakeNet
	cancel context.CancelFunc
	done   chan error
	reload chan struct{}
	mu     sync.Mutex
	cfg    []byte
	states map[string]NICState
	log    *bytes.Buffer
	logMu  sync.Mutex
}

func startDaemon(t *testing.T, n *fakeNet, env ...string) *daemonRig {
	root := fsroot.Root(t.TempDir())
	if n == nil {
		n = &fakeNet{conns: map[string][]*fakeConn{}, down: map[string]bool{}}
	}
	r := &daemonRig{t: t, net: n, done: make(chan error, 1),
		reload: make(chan struct{}), log: &bytes.Buffer{}}
	r.setConfig(env...)
	log := slog.New(slog.NewTextHandler(lockedWriter{&r.logMu, r.log}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	newPlugins := func() PluginSet {
		return onelease.NewSet(onelease.Deps{Root: root, Log: log, LinkMTU: func(string) (int, error) { return 1500, nil }})
	}
	d := &Daemon{Log: log, Listen: r.net.listen, NewPlugins: newPlugins, RetryEvery: 20 * time.Millisecond,
		OnState: func(m map[string]NICState) { r.mu.Lock(); r.states = m; r.mu.Unlock() }}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	load := func() ([]NICConfig, error) {
		r.mu.Lock()
		data := r.cfg
		r.mu.Unlock()
		return LoadConfig(data, newPlugins())
	}
	go func() { r.done <- d.Run(ctx, load, r.reload) }()
	t.Cleanup(func() { r.stop() })
	return r
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (r *daemonRig) setConfig(env ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cfg = Render(spec(r.t, env...))
}

func (r *daemonRig) stop() error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		return err
	case <-time.After(10 * time.Second):
		r.t.Fatal("daemon did not stop")
	}
	return nil
}

func (r *daemonRig) state(nic string) NICState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.states[nic]
}

var twoNICs = []string{"ETH1_IP=10.0.0.1", "ETH1_MASK=255.255.255.0", "ETH2_IP=10.2.0.1", "ETH2_MASK=255.255.255.0"}

func TestDaemonServes(t *testing.T) {
	r := startDaemon(t, nil, twoNICs...)
	c := r.net.conn(t, "eth1", 0)

	// DISCOVER without the broadcast flag: the OFFER goes in a frame to the
	// client's MAC and offered address.
	disc, _ := dhcpv4.NewDiscovery(mustMAC("02:00:0a:00:00:0c"))
	disc.SetUnicast()
	c.in <- disc.ToBytes()
	s := reply(t, c)
	if s.to != "frame 02:00:0a:00:00:0c 10.0.0.12 from 10.0.0.1" || s.payload.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("OFFER %q %s", s.to, s.payload.Summary())
	}
	// With the broadcast flag: broadcast.
	req, _ := dhcpv4.NewRequestFromOffer(s.payload)
	req.SetBroadcast()
	c.in <- req.ToBytes()
	s = reply(t, c)
	if s.to != "udp 255.255.255.255:68" || s.payload.MessageType() != dhcpv4.MessageTypeAck || s.payload.YourIPAddr.String() != "10.0.0.12" {
		t.Fatalf("ACK %q %s", s.to, s.payload.Summary())
	}
	// Renewal: unicast to the client's address.
	renew, _ := dhcpv4.NewRenewFromAck(s.payload)
	c.in <- renew.ToBytes()
	if s = reply(t, c); s.to != "udp 10.0.0.12:68" {
		t.Fatalf("renewal reply to %q", s.to)
	}
	// Relayed: back to the relay, port 67.
	relayed, _ := dhcpv4.NewDiscovery(mustMAC("02:00:c0:a8:00:01"), dhcpv4.WithGatewayIP(net.ParseIP("10.0.0.5")))
	c.in <- relayed.ToBytes()
	if s = reply(t, c); s.to != "udp 10.0.0.5:67" || s.payload.YourIPAddr.String() != "10.0.0.254" {
		t.Fatalf("relayed reply %q %s", s.to, s.payload.YourIPAddr)
	}
	// A NAK is broadcast.
	nak, _ := dhcpv4.New(dhcpv4.WithHwAddr(mustMAC("02:00:c0:a8:00:02")), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("192.0.2.1"))))
	c.in <- nak.ToBytes()
	if s = reply(t, c); s.to != "udp 255.255.255.255:68" || s.payload.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("NAK %q %s", s.to, s.payload.Summary())
	}
	// Garbage, replies from other servers, RELEASE, a MAC without the
	// MAC2IP prefix: nothing back, still serving.
	noReply(t, c, func() {
		c.in <- []byte("not dhcp at all")
		foreign, _ := dhcpv4.NewDiscovery(mustMAC("52:54:00:12:34:56"))
		c.in <- foreign.ToBytes()
		c.in <- append(disc.ToBytes()[:100], 0xff)
		offer := s.payload
		c.in <- offer.ToBytes() // a BOOTREPLY
		rel, _ := dhcpv4.NewReleaseFromACK(s.payload)
		c.in <- rel.ToBytes()
	})
	// The other NIC has its own server, pool and options.
	c2 := r.net.conn(t, "eth2", 0)
	d2, _ := dhcpv4.NewDiscovery(mustMAC("02:00:0a:02:00:07"))
	c2.in <- d2.ToBytes()
	if s = reply(t, c2); s.payload.YourIPAddr.String() != "10.2.0.7" || s.payload.Router()[0].String() != "10.2.0.1" {
		t.Fatalf("eth2: %s", s.payload.Summary())
	}
	if st := r.state("eth1"); !st.Listening {
		t.Errorf("state %+v", st)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if !c.isClosed() || !c2.isClosed() {
		t.Error("sockets left open")
	}
}

func TestDaemonReload(t *testing.T) {
	r := startDaemon(t, nil, twoNICs...)
	c1, c2 := r.net.conn(t, "eth1", 0), r.net.conn(t, "eth2", 0)
	// eth2's pool changes, eth1 does not: only eth2's server restarts.
	r.setConfig(append(twoNICs, "ONEAPP_VNF_DHCP4_ETH2=10.2.0.0/24:10.2.0.100-10.2.0.110")...)
	r.reload <- struct{}{}
	c2b := r.net.conn(t, "eth2", 1)
	if !c2.isClosed() || c1.isClosed() {
		t.Fatalf("eth1 closed %v (want false), old eth2 closed %v (want true)", c1.isClosed(), c2.isClosed())
	}
	d, _ := dhcpv4.NewDiscovery(mustMAC("02:00:c0:a8:00:01"))
	c2b.in <- d.ToBytes()
	if s := reply(t, c2b); s.payload.YourIPAddr.String() != "10.2.0.110" {
		t.Errorf("new pool not served: %s", s.payload.YourIPAddr)
	}
	// A configuration that does not load keeps the running servers.
	r.mu.Lock()
	r.cfg = []byte("eth1: [")
	r.mu.Unlock()
	r.reload <- struct{}{}
	// The reload is handled asynchronously: wait for its verdict before
	// checking that eth1 still serves.
	waitFor(t, "the bad reload logged", func() bool {
		return strings.Contains(r.logString(), "reload failed; the running servers are kept")
	})
	c1.in <- d.ToBytes()
	if s := reply(t, c1); s.payload.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatal("eth1 stopped serving after a bad reload")
	}
	// Removing a NIC stops its server.
	r.setConfig("ETH1_IP=10.0.0.1", "ETH1_MASK=255.255.255.0")
	r.reload <- struct{}{}
	waitFor(t, "eth2 closed", c2b.isClosed)
	if c1.isClosed() {
		t.Error("eth1 restarted although unchanged")
	}
}

func (r *daemonRig) logString() string {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	return r.log.String()
}

func TestDaemonNICMissing(t *testing.T) {
	r := &fakeNet{conns: map[string][]*fakeConn{}, down: map[string]bool{"eth2": true}}
	rig := startDaemon(t, r, twoNICs...)
	c1 := r.conn(t, "eth1", 0)
	waitFor(t, "eth2 error", func() bool { return strings.Contains(rig.state("eth2").Error, "no such interface") })
	d, _ := dhcpv4.NewDiscovery(mustMAC("02:00:0a:00:00:0c"))
	d.SetBroadcast()
	c1.in <- d.ToBytes()
	reply(t, c1)
	// The link appears: eth2 is served without a restart.
	r.mu.Lock()
	r.down["eth2"] = false
	r.mu.Unlock()
	r.conn(t, "eth2", 0)
	waitFor(t, "eth2 listening", func() bool { return rig.state("eth2").Listening })
}

// FuzzHandlePacket: no datagram makes the server panic (handlePacket
// recovers, so a recovered panic counts as a failure here) or answer a
// malformed request.
func FuzzHandlePacket(f *testing.F) {
	d, _ := dhcpv4.NewDiscovery(mustMAC("02:00:0a:00:00:0c"))
	f.Add(d.ToBytes())
	r, _ := dhcpv4.New(dhcpv4.WithHwAddr(mustMAC("aa:00:00:00:00:01")), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(net.ParseIP("10.0.0.9")))
	f.Add(r.ToBytes())
	f.Add([]byte{1, 1, 6, 0})
	root := fsroot.Root(f.TempDir())
	var logb bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logb, nil))
	set := onelease.NewSet(onelease.Deps{Root: root, Log: log, LinkMTU: func(string) (int, error) { return 1500, nil }})
	defer set.Close()
	cfgs, err := LoadConfig(Render(Spec{Enabled: true, Servers: []Server{mustSpecServer(f)}}), set)
	if err != nil {
		f.Fatal(err)
	}
	handlers, err := setup(set, cfgs[0].Plugins)
	if err != nil {
		f.Fatal(err)
	}
	conn := newFakeConn()
	f.Fuzz(func(t *testing.T, b []byte) {
		handlePacket(conn, handlers, b, log)
		for len(conn.out) > 0 {
			<-conn.out
		}
		if strings.Contains(logb.String(), "crashed") {
			t.Fatalf("a handler panicked on %x:\n%s", b, logb.String())
		}
	})
}

func mustSpecServer(f *testing.F) Server {
	s, err := FromContext(context.Background(), onecontext.FromPairs("ONEAPP_VNF_DHCP4_ENABLED=YES", "ETH1_IP=10.0.0.1", "ETH1_MASK=255.255.255.0"))
	if err != nil || len(s.Servers) != 1 {
		f.Fatal(err)
	}
	return s.Servers[0]
}

// newReply builds what dhcpv4.NewReplyFromRequest builds, byte for byte.
func TestNewReplyMatchesLibrary(t *testing.T) {
	relay := dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 3, 'a', 'b', 'c'})
	for name, mods := range map[string][]dhcpv4.Modifier{
		"plain":     nil,
		"broadcast": {dhcpv4.WithBroadcast(true)},
		"relayed with agent information and client id": {dhcpv4.WithGatewayIP(net.ParseIP("10.0.0.5")), dhcpv4.WithOption(relay),
			dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 2, 0, 0x0a, 0, 0, 0, 0x0c}))},
		"renewing": {dhcpv4.WithClientIP(net.ParseIP("10.0.0.12"))},
	} {
		req, err := dhcpv4.NewDiscovery(mustMAC("02:00:0a:00:00:0c"), mods...)
		if err != nil {
			t.Fatal(err)
		}
		want, err := dhcpv4.NewReplyFromRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := newReply(req); !bytes.Equal(got.ToBytes(), want.ToBytes()) {
			t.Errorf("%s:\n got %s\nwant %s", name, got.Summary(), want.Summary())
		}
	}
}
