package onelease_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredhcp/coredhcp/handler"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/hypercx/vrouter/pkg/dhcp4"
	"github.com/hypercx/vrouter/pkg/dhcp4/onelease"
	"github.com/hypercx/vrouter/pkg/fsroot"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuf collects log lines for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// srv is one NIC's server: the plugin chain the daemon builds from the
// configuration, over a lease file in a temporary root.
type srv struct {
	t        *testing.T
	root     fsroot.Root
	clk      *clock
	log      *logBuf
	set      *onelease.Set
	handlers []handler.Handler4
	args     string
}

const leaseFile = "/var/lib/one-appliance/dhcp4/leases-eth1.log"

func newSrv(t *testing.T, onelease string) *srv {
	t.Helper()
	s := &srv{t: t, root: fsroot.Root(t.TempDir()), clk: &clock{t: time.Unix(1_800_000_000, 0)}, log: &logBuf{}}
	s.start(onelease)
	return s
}

// start (re)loads the chain with the given onelease arguments.
func (s *srv) start(args string) {
	s.t.Helper()
	if s.set != nil {
		if err := s.set.Close(); err != nil {
			s.t.Fatal(err)
		}
	}
	s.args = args
	s.set = onelease.NewSet(onelease.Deps{
		Root: s.root, Now: s.clk.now, Log: slog.New(slog.NewTextHandler(s.log, nil)),
		LinkMTU: func(name string) (int, error) {
			if name != "eth1" {
				return 0, fmt.Errorf("no link %s", name)
			}
			return 1450, nil
		},
	})
	s.t.Cleanup(func() { _ = s.set.Close() })
	byName := map[string]*struct {
		setup func(...string) (handler.Handler4, error)
	}{}
	for _, p := range s.set.Plugins() {
		byName[p.Name] = &struct {
			setup func(...string) (handler.Handler4, error)
		}{p.Setup4}
	}
	s.handlers = nil
	for _, pc := range [][]string{
		{"server_id", "10.0.0.1"},
		{"netmask", "255.255.255.0"},
		{"router", "10.0.0.1"},
		{"dns", "10.0.0.1", "1.1.1.1"},
		{"mtu", "%eth1"},
		append([]string{"onelease"}, strings.Fields(args)...),
	} {
		h, err := byName[pc[0]].setup(pc[1:]...)
		if err != nil {
			s.t.Fatalf("setting up %s: %v", pc[0], err)
		}
		s.handlers = append(s.handlers, h)
	}
}

func hw(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func (s *srv) do(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 { return dhcp4.Reply(req, s.handlers) }

func discover(m string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	d, err := dhcpv4.NewDiscovery(hw(m), mods...)
	if err != nil {
		panic(err)
	}
	return d
}

func request(m string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	r, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithHwAddr(hw(m)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer),
	}, mods...)...)
	if err != nil {
		panic(err)
	}
	return r
}

// dora runs DISCOVER, OFFER, REQUEST, ACK and returns the ACK.
func (s *srv) dora(m string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	s.t.Helper()
	offer := s.do(discover(m, mods...))
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		s.t.Fatalf("%s: no OFFER (%v)\nlog:\n%s", m, offer, s.log)
	}
	req, err := dhcpv4.NewRequestFromOffer(offer)
	if err != nil {
		s.t.Fatal(err)
	}
	ack := s.do(req)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		s.t.Fatalf("%s: no ACK for %s: %v", m, offer.YourIPAddr, ack)
	}
	if !ack.YourIPAddr.Equal(offer.YourIPAddr) {
		s.t.Fatalf("%s: offered %s, acknowledged %s", m, offer.YourIPAddr, ack.YourIPAddr)
	}
	return ack
}

func (s *srv) ip(m string, mods ...dhcpv4.Modifier) string {
	s.t.Helper()
	return s.dora(m, mods...).YourIPAddr.String()
}

// renew sends a RENEWING request (ciaddr set) and returns the reply type ("" for none).
func (s *srv) renew(m, ip string) string {
	resp := s.do(request(m, dhcpv4.WithClientIP(net.ParseIP(ip))))
	if resp == nil {
		return ""
	}
	return resp.MessageType().String()
}

const pool = leaseFile + " 10.0.0.1 10.0.0.254 3600s --excluded-ips 10.0.0.1 --mac2ip --mac2ip-prefix 02:00 --authoritative"

func TestMAC2IP(t *testing.T) {
	s := newSrv(t, pool)
	ack := s.dora("02:00:0a:00:00:0c")
	if got := ack.YourIPAddr.String(); got != "10.0.0.12" {
		t.Fatalf("MAC2IP gave %s, want 10.0.0.12", got)
	}
	if lt := ack.IPAddressLeaseTime(0); lt != time.Hour {
		t.Errorf("lease time %v", lt)
	}
	if ack.ServerIdentifier().String() != "10.0.0.1" || ack.Router()[0].String() != "10.0.0.1" || ack.SubnetMask().String() != "ffffff00" {
		t.Errorf("options: %s", ack.Summary())
	}
	if d := ack.DNS(); len(d) != 2 || d[0].String() != "10.0.0.1" {
		t.Errorf("DNS %v", d)
	}
	// Same MAC again (reboot): same address, and a renewal is acknowledged.
	if got := s.ip("02:00:0a:00:00:0c"); got != "10.0.0.12" {
		t.Errorf("second DORA gave %s", got)
	}
	if got := s.renew("02:00:0a:00:00:0c", "10.0.0.12"); got != "ACK" {
		t.Errorf("renewal: %s", got)
	}
	// MAC2IP off: the same MAC is an ordinary client, served from the top
	// of the pool.
	s2 := newSrv(t, leaseFile+" 10.0.0.1 10.0.0.254 3600s --authoritative")
	if got := s2.ip("02:00:0a:00:00:0c"); got != "10.0.0.254" {
		t.Errorf("without --mac2ip: %s", got)
	}
	if got := s2.ip("52:54:00:12:34:56"); got != "10.0.0.253" {
		t.Errorf("without --mac2ip, any MAC is served: %s", got)
	}
}

// A MAC without the MAC2IP prefix gets no lease while MAC2IP is on (the
// guide: "otherwise no IPv4 address will be assigned"): no OFFER, no ACK,
// no NAK, nothing stored; it is warned about once, not on every retry.
func TestMAC2IPForeignMAC(t *testing.T) {
	s := newSrv(t, pool)
	foreign := "52:54:00:12:34:56"
	for i := 0; i < 3; i++ {
		if r := s.do(discover(foreign)); r != nil {
			t.Fatalf("DISCOVER from %s answered: %s", foreign, r.Summary())
		}
	}
	for name, req := range map[string]*dhcpv4.DHCPv4{
		"INIT-REBOOT": request(foreign, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.77")))),
		"SELECTING": request(foreign, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.77"))),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.1")))),
		"RENEWING": request(foreign, dhcpv4.WithClientIP(net.ParseIP("10.0.0.77"))),
		"INFORM":   func() *dhcpv4.DHCPv4 { d, _ := dhcpv4.NewInform(hw(foreign), net.ParseIP("10.0.0.77")); return d }(),
	} {
		if r := s.do(req); r != nil {
			t.Errorf("%s from %s answered: %s", name, foreign, r.Summary())
		}
	}
	// The prefix is configurable: 02:00 is foreign under aa:bb.
	s2 := newSrv(t, leaseFile+" 10.0.0.1 10.0.0.254 3600s --mac2ip --mac2ip-prefix aa:bb --authoritative")
	if r := s2.do(discover("02:00:0a:00:00:0c")); r != nil {
		t.Errorf("02:00 MAC answered under prefix aa:bb: %s", r.Summary())
	}
	if got := s2.ip("aa:bb:0a:00:00:0c"); got != "10.0.0.12" {
		t.Errorf("aa:bb:0a:00:00:0c got %s", got)
	}
	if leasesOf(s) != 0 {
		t.Error("a foreign MAC got a lease")
	}
	if n, _ := onelease.CountActive(s.root.Path(leaseFile), s.clk.now()); n != 0 {
		t.Errorf("%d leases in the file", n)
	}
	if c := strings.Count(s.log.String(), "level=WARN msg=\"no lease: the MAC lacks the MAC2IP prefix 02:00"); c != 1 {
		t.Errorf("warned %d times, want once:\n%s", c, s.log)
	}
	// Still serving the cloud's NICs.
	if got := s.ip("02:00:0a:00:00:0c"); got != "10.0.0.12" {
		t.Error(got)
	}
	// A lease given while MAC2IP was off to a foreign MAC is dropped when
	// MAC2IP is turned on.
	s3 := newSrv(t, leaseFile+" 10.0.0.1 10.0.0.254 3600s --authoritative")
	s3.ip(foreign)
	s3.ip("02:00:0a:00:00:0c")
	s3.start(pool)
	if got := leasesOf(s3); got != 1 {
		t.Errorf("%d leases after turning MAC2IP on, want 1 (the 02:00 MAC's)", got)
	}
	if !strings.Contains(s3.log.String(), "dropped stored leases") || !strings.Contains(s3.log.String(), foreign) {
		t.Errorf("drop not warned:\n%s", s3.log)
	}
}

func TestMAC2IPMiss(t *testing.T) {
	s := newSrv(t, leaseFile+" 10.0.0.1 10.0.0.100 3600s --excluded-ips 10.0.0.1,10.0.0.50 --mac2ip --authoritative")
	for _, tt := range []struct{ mac, why string }{
		{"02:00:0a:00:00:01", "outside the pool"}, // the router's own
		{"02:00:0a:00:00:32", "outside the pool"}, // excluded
		{"02:00:0a:00:00:c8", "outside the pool"}, // 10.0.0.200: beyond the end
		{"02:00:c0:a8:00:05", "outside the pool"}, // another subnet
	} {
		got := s.ip(tt.mac)
		if got == "" || strings.HasSuffix(got, ".1") || got == "10.0.0.50" {
			t.Errorf("%s got %s", tt.mac, got)
		}
		if !strings.Contains(s.log.String(), "MAC2IP miss") || !strings.Contains(s.log.String(), tt.why) {
			t.Errorf("%s: miss not logged:\n%s", tt.mac, s.log)
		}
	}
	// The address of a MAC2IP VM held by another client (a VM whose own
	// address is another network's, given the top of the pool): the VM gets
	// a dynamic one; once its own is free, its renewal is NAKed and it gets it.
	s = newSrv(t, pool)
	other := "02:00:c0:a8:00:05" // 192.168.0.5: a miss
	if got := s.ip(other); got != "10.0.0.254" {
		t.Fatal(got)
	}
	vm := "02:00:0a:00:00:fe" // 10.0.0.254
	fallback := s.ip(vm)
	if fallback == "10.0.0.254" || fallback == "" {
		t.Fatalf("VM got %s while its address is leased to another client", fallback)
	}
	if !strings.Contains(s.log.String(), "is leased to "+other) {
		t.Errorf("miss reason not logged:\n%s", s.log)
	}
	if got := s.renew(vm, fallback); got != "ACK" {
		t.Errorf("renewal of the fallback while the address is taken: %s", got)
	}
	rel := request(other, dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(net.ParseIP("10.0.0.254")))
	if s.do(rel) != nil {
		t.Error("RELEASE got an answer")
	}
	if got := s.renew(vm, fallback); got != "NAK" {
		t.Errorf("renewal of the fallback once the VM's address is free: %s, want NAK", got)
	}
	if got := s.ip(vm); got != "10.0.0.254" {
		t.Errorf("VM got %s after the NAK, want its own 10.0.0.254", got)
	}
}

func TestDynamicPool(t *testing.T) {
	s := newSrv(t, leaseFile+" 10.0.0.1 10.0.0.5 3600s --excluded-ips 10.0.0.1,10.0.0.4 --authoritative")
	got := map[string]string{}
	for i := 1; i <= 3; i++ {
		m := fmt.Sprintf("aa:00:00:00:00:%02x", i)
		got[m] = s.ip(m)
	}
	want := map[string]string{"aa:00:00:00:00:01": "10.0.0.5", "aa:00:00:00:00:02": "10.0.0.3", "aa:00:00:00:00:03": "10.0.0.2"}
	for m, ip := range want {
		if got[m] != ip {
			t.Errorf("%s got %s, want %s (from the top, excluded skipped)", m, got[m], ip)
		}
	}
	if offer := s.do(discover("aa:00:00:00:00:04")); offer != nil {
		t.Errorf("exhausted pool offered %s", offer.YourIPAddr)
	}
	if !strings.Contains(s.log.String(), "the pool is exhausted") {
		t.Errorf("exhaustion not logged")
	}
	// A client asking for a free address of the pool gets it.
	s2 := newSrv(t, leaseFile+" 10.0.0.1 10.0.0.50 3600s --authoritative")
	if got := s2.ip("aa:00:00:00:00:09", dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.7")))); got != "10.0.0.7" {
		t.Errorf("requested 10.0.0.7, got %s", got)
	}
	// Two clients discovering at once never get the same offer.
	a, b := s2.do(discover("aa:00:00:00:00:0a")), s2.do(discover("aa:00:00:00:00:0b"))
	if a.YourIPAddr.Equal(b.YourIPAddr) {
		t.Errorf("both offered %s", a.YourIPAddr)
	}
}

func TestExpiry(t *testing.T) {
	s := newSrv(t, leaseFile+" 10.0.0.2 10.0.0.2 60s --authoritative")
	if got := s.ip("aa:00:00:00:00:01"); got != "10.0.0.2" {
		t.Fatal(got)
	}
	if s.do(discover("aa:00:00:00:00:02")) != nil {
		t.Fatal("offered a leased address")
	}
	s.clk.add(59 * time.Second)
	if s.do(discover("aa:00:00:00:00:02")) != nil {
		t.Fatal("offered an address whose lease has a second left")
	}
	s.clk.add(2 * time.Second)
	if got := s.ip("aa:00:00:00:00:02"); got != "10.0.0.2" {
		t.Fatalf("expired address not reused: %s", got)
	}
	if got := s.renew("aa:00:00:00:00:01", "10.0.0.2"); got != "NAK" {
		t.Errorf("the old holder renewing: %s, want NAK", got)
	}
	// An unanswered offer is held for a minute only.
	s = newSrv(t, leaseFile+" 10.0.0.2 10.0.0.2 3600s --authoritative")
	if s.do(discover("aa:00:00:00:00:01")) == nil {
		t.Fatal("no offer")
	}
	if s.do(discover("aa:00:00:00:00:02")) != nil {
		t.Fatal("an offered address was offered to another client")
	}
	s.clk.add(61 * time.Second)
	if s.do(discover("aa:00:00:00:00:02")) == nil {
		t.Fatal("an abandoned offer was never released")
	}
}

func TestPersistence(t *testing.T) {
	s := newSrv(t, pool)
	s.ip("02:00:0a:00:00:0c")
	dyn := s.ip("02:00:c0:a8:00:01")
	file := s.root.Path(leaseFile)

	// Restart: the leases are there without any DISCOVER.
	s.start(pool)
	if got := s.renew("02:00:c0:a8:00:01", dyn); got != "ACK" {
		t.Errorf("renewal after restart: %s", got)
	}
	if got := s.ip("02:00:c0:a8:00:02"); got == dyn {
		t.Errorf("restart forgot %s is leased", dyn)
	}
	if got := leasesOf(s); got != 3 {
		t.Errorf("%d active leases, want 3", got)
	}

	// A torn last record and a corrupt one are skipped, never fatal.
	f, _ := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("bound aa:00:00:00:00:09 10.0.0.9 1800003600 - deadbeef\n")
	f.WriteString("bound aa:00:00:00:00:0a 10.0.0.10 18000")
	f.Close()
	s.start(pool)
	if got := leasesOf(s); got != 3 {
		t.Errorf("%d active leases after torn/corrupt records, want 3", got)
	}
	if !strings.Contains(s.log.String(), "torn record") || !strings.Contains(s.log.String(), "corrupt records") {
		t.Errorf("not warned:\n%s", s.log)
	}
	// Compacted: the file holds only intact records now.
	data, _ := os.ReadFile(file)
	if strings.Contains(string(data), "deadbeef") || !strings.HasSuffix(string(data), "\n") || strings.Count(string(data), "\n") != 4 {
		t.Errorf("not compacted:\n%s", data)
	}

	// A new pool that no longer holds a lease, or excludes it: dropped with a
	// warning, never an aborted start (bug §14.27).
	s.start(leaseFile + " 10.0.0.1 10.0.0.200 3600s --excluded-ips 10.0.0.1,10.0.0.12 --mac2ip --authoritative")
	if got := leasesOf(s); got != 0 {
		t.Errorf("%d leases survived, want 0 (10.0.0.12 excluded, the others above the pool)", got)
	}
	if !strings.Contains(s.log.String(), "dropped stored leases") {
		t.Errorf("drop not warned:\n%s", s.log)
	}

	// Expired leases are not loaded.
	s = newSrv(t, leaseFile+" 10.0.0.2 10.0.0.9 60s --authoritative")
	s.ip("02:00:c0:a8:00:01")
	s.clk.add(2 * time.Minute)
	s.start(s.args)
	if got := leasesOf(s); got != 0 {
		t.Errorf("expired lease loaded")
	}
	n, err := onelease.CountActive(s.root.Path(leaseFile), s.clk.now())
	if err != nil || n != 0 {
		t.Errorf("CountActive = %d, %v", n, err)
	}
}

func leasesOf(s *srv) int {
	n := 0
	for _, l := range s.set.Leases() {
		n += len(l.Active())
	}
	return n
}

func TestReleaseAndDecline(t *testing.T) {
	s := newSrv(t, leaseFile+" 10.0.0.2 10.0.0.3 3600s --authoritative")
	a := s.ip("aa:00:00:00:00:01") // 10.0.0.3
	rel := request("aa:00:00:00:00:01", dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(net.ParseIP(a)))
	if s.do(rel) != nil {
		t.Fatal("RELEASE got an answer")
	}
	if n, _ := onelease.CountActive(s.root.Path(leaseFile), s.clk.now()); n != 0 {
		t.Errorf("released lease still active in the file: %d", n)
	}
	// Sticky: the same client gets the same address back.
	if got := s.ip("aa:00:00:00:00:01"); got != a {
		t.Errorf("after release got %s, want %s back", got, a)
	}
	// Another client cannot release it.
	rel2 := request("aa:00:00:00:00:02", dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(net.ParseIP(a)))
	s.do(rel2)
	if got := s.renew("aa:00:00:00:00:01", a); got != "ACK" {
		t.Errorf("a stranger's RELEASE freed the lease: %s", got)
	}

	// DECLINE: the address is in use by someone else; it leaves the pool
	// for 10 minutes and the client gets another one.
	dec := request("aa:00:00:00:00:01", dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(a))), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.1"))))
	if s.do(dec) != nil {
		t.Fatal("DECLINE got an answer")
	}
	if got := s.ip("aa:00:00:00:00:01"); got == a {
		t.Fatalf("declined %s offered again", a)
	}
	if s.do(discover("aa:00:00:00:00:03")) != nil {
		t.Fatal("the declined address was offered to another client")
	}
	// A DECLINE survives a restart.
	s.start(s.args)
	if s.do(discover("aa:00:00:00:00:03")) != nil {
		t.Fatal("the declined address came back after a restart")
	}
	s.clk.add(11 * time.Minute)
	if got := s.ip("aa:00:00:00:00:03"); got != a {
		t.Errorf("declined address not back after the hold: got %s", got)
	}
	// A client cannot decline an address it does not hold.
	dec2 := request("aa:00:00:00:00:09", dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(a))))
	s.do(dec2)
	if got := s.renew("aa:00:00:00:00:03", a); got != "ACK" {
		t.Errorf("a stranger's DECLINE took the address: %s", got)
	}
}

func TestRequests(t *testing.T) {
	s := newSrv(t, pool)
	// INIT-REBOOT for an address of another network: NAK, options stripped.
	nak := s.do(request("02:00:c0:a8:00:01", dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("192.168.1.20")))))
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("INIT-REBOOT elsewhere: %v", nak)
	}
	if !nak.YourIPAddr.IsUnspecified() || nak.Options.Has(dhcpv4.OptionRouter) || nak.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || nak.ServerIdentifier().String() != "10.0.0.1" {
		t.Errorf("NAK carries too much: %s", nak.Summary())
	}
	// INIT-REBOOT of a free address of the pool (the lease file was lost,
	// or another router held the lease): acknowledged.
	if r := s.do(request("02:00:c0:a8:00:02", dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.77"))))); r == nil || r.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("INIT-REBOOT of a free address: %v", r)
	}
	// A MAC2IP VM asking for another address than its own: NAK.
	if got := s.renew("02:00:0a:00:00:0c", "10.0.0.40"); got != "NAK" {
		t.Errorf("MAC2IP VM renewing a foreign address: %s", got)
	}
	// Not authoritative: silence instead.
	s2 := newSrv(t, leaseFile+" 10.0.0.1 10.0.0.254 3600s --mac2ip")
	if r := s2.do(request("02:00:c0:a8:00:01", dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("192.168.1.20"))))); r != nil {
		t.Errorf("non-authoritative server answered %s", r.MessageType())
	}
	// Choosing another server's offer releases ours.
	s3 := newSrv(t, leaseFile+" 10.0.0.2 10.0.0.2 3600s --authoritative")
	offer := s3.do(discover("02:00:c0:a8:00:01"))
	other := request("02:00:c0:a8:00:01", dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.99"))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)))
	if s3.do(other) != nil {
		t.Error("answered a REQUEST for another server")
	}
	if s3.do(discover("02:00:c0:a8:00:02")) == nil {
		t.Error("the abandoned offer was not released")
	}
	// A SELECTING request whose offer is gone: NAK even when not authoritative.
	s4 := newSrv(t, leaseFile+" 10.0.0.2 10.0.0.2 3600s")
	s4.ip("02:00:c0:a8:00:01")
	sel := request("02:00:c0:a8:00:02", dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.1"))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.2"))))
	if r := s4.do(sel); r == nil || r.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("SELECTING for a taken address: %v", r)
	}
}

// A client renewing an address nobody holds, other than the one this
// router has on record for it (the other router leased it while this one
// was backup), keeps its address: the lease moves, across a restart too.
func TestRenewalMovesAStaleLease(t *testing.T) {
	s := newSrv(t, leaseFile+" 10.0.0.2 10.0.0.3 3600s --authoritative")
	a, b := "aa:00:00:00:00:01", "aa:00:00:00:00:02"
	if got := s.ip(a); got != "10.0.0.3" {
		t.Fatal(got)
	}
	if got := s.renew(a, "10.0.0.2"); got != "ACK" {
		t.Fatalf("renewing the address it holds from the other router: %s, want ACK", got)
	}
	if !strings.Contains(s.log.String(), "lease moved") {
		t.Errorf("move not logged:\n%s", s.log)
	}
	s.start(leaseFile + " 10.0.0.2 10.0.0.3 3600s --authoritative")
	if got := s.ip(b); got != "10.0.0.3" {
		t.Errorf("another client got %s, want the address the first one left, 10.0.0.3", got)
	}
	if got := s.renew(a, "10.0.0.2"); got != "ACK" {
		t.Errorf("renewal of the moved lease after a restart: %s", got)
	}
	// An address another client holds is still refused.
	if got := s.renew(a, "10.0.0.3"); got != "NAK" {
		t.Errorf("renewing an address leased to another client: %s, want NAK", got)
	}
	// So is a REQUEST answering an offer with another address than offered.
	s2 := newSrv(t, leaseFile+" 10.0.0.2 10.0.0.9 3600s --authoritative")
	offer := s2.do(discover(a))
	sel := request(a, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.1"))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.5"))))
	if offer == nil || offer.YourIPAddr.String() == "10.0.0.5" {
		t.Fatalf("offer: %v", offer)
	}
	if r := s2.do(sel); r == nil || r.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("SELECTING another address than offered: %v", r)
	}
}

func TestInformAndOptions(t *testing.T) {
	s := newSrv(t, pool)
	inf, _ := dhcpv4.NewInform(hw("02:00:c0:a8:00:01"), net.ParseIP("10.0.0.40"),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionDomainNameServer, dhcpv4.OptionRouter))
	ack := s.do(inf)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.IsUnspecified() || ack.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
		t.Fatalf("INFORM: %v", ack)
	}
	if len(ack.DNS()) != 2 || ack.Options.Has(dhcpv4.OptionInterfaceMTU) {
		t.Errorf("INFORM asked for DNS and router only: %s", ack.Summary())
	}
	// The MTU comes from the link (%eth1) when the client asks for it, and
	// every option when it names none.
	offer := s.do(discover("02:00:c0:a8:00:02", dhcpv4.WithRequestedOptions(dhcpv4.OptionInterfaceMTU)))
	if v := offer.Options.Get(dhcpv4.OptionInterfaceMTU); len(v) != 2 || int(v[0])<<8|int(v[1]) != 1450 {
		t.Errorf("MTU option %v", v)
	}
	plain, _ := dhcpv4.New(dhcpv4.WithHwAddr(hw("02:00:c0:a8:00:03")), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))
	offer = s.do(plain)
	if offer == nil || len(offer.DNS()) != 2 || !offer.Options.Has(dhcpv4.OptionInterfaceMTU) {
		t.Errorf("a client without a parameter list gets every option: %v", offer)
	}
}

func TestMalformedRequests(t *testing.T) {
	s := newSrv(t, pool)
	for name, req := range map[string]*dhcpv4.DHCPv4{
		"token ring": func() *dhcpv4.DHCPv4 { d := discover("02:00:0a:00:00:0c"); d.HWType = iana.HWTypeIEEE802; return d }(),
		"short hardware address": func() *dhcpv4.DHCPv4 {
			d := discover("02:00:0a:00:00:0c")
			d.ClientHWAddr = d.ClientHWAddr[:4]
			return d
		}(),
		"multicast MAC": discover("03:00:0a:00:00:0c"),
		"zero MAC":      discover("00:00:00:00:00:00"),
		"no message type": func() *dhcpv4.DHCPv4 {
			d := discover("02:00:c0:a8:00:01")
			d.Options.Del(dhcpv4.OptionDHCPMessageType)
			return d
		}(),
		"REQUEST naming no address": request("02:00:c0:a8:00:01"),
		"unknown message type":      discover("02:00:c0:a8:00:01", dhcpv4.WithMessageType(dhcpv4.MessageType(42))),
		"DECLINE without address":   request("02:00:c0:a8:00:01", dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline)),
	} {
		if r := s.do(req); r != nil {
			t.Errorf("%s: answered %s", name, r.Summary())
		}
	}
	if leasesOf(s) != 0 {
		t.Error("a malformed request got a lease")
	}
	// Still serving.
	if got := s.ip("02:00:0a:00:00:0c"); got != "10.0.0.12" {
		t.Error(got)
	}
}

func TestParseArgs(t *testing.T) {
	for _, tt := range []struct{ args, err string }{
		{"/l 10.0.0.1 10.0.0.9 60s", ""},
		{"/l 10.0.0.1 10.0.0.9 60s --excluded-ips=10.0.0.2,10.0.0.3 --mac2ip --mac2ip-prefix AA:bb --authoritative", ""},
		{"/l 10.0.0.1 10.0.0.9", "arguments"},
		{"l 10.0.0.1 10.0.0.9 60s", "absolute"},
		{"/l 10.0.0.9 10.0.0.1 60s", "after its end"},
		{"/l 10.0.0.x 10.0.0.9 60s", "pool start"},
		{"/l 10.0.0.1 ::1 60s", "pool end"},
		{"/l 10.0.0.1 10.0.0.9 forever", "lease time"},
		{"/l 10.0.0.1 10.0.0.9 60s --mac2ip-prefix 0200", "MAC prefix"},
		{"/l 10.0.0.1 10.0.0.9 60s --mac2ip-prefix", "needs a value"},
		{"/l 10.0.0.1 10.0.0.9 60s --excluded-ips 10.0.0.2,x", "excluded"},
		{"/l 10.0.0.1 10.0.0.9 60s --sqlite", "unknown argument"},
	} {
		_, err := onelease.ParseArgs(strings.Fields(tt.args))
		if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%q: err %v, want %q", tt.args, err, tt.err)
		}
	}
	set := onelease.NewSet(onelease.Deps{})
	for _, tt := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"mtu", []string{"%eth1"}, true}, {"mtu", []string{"1500"}, true}, {"mtu", []string{"67"}, false}, {"mtu", []string{"%"}, false},
		{"netmask", []string{"255.255.0.255"}, false}, {"netmask", []string{"255.255.255.0"}, true},
		{"router", nil, false}, {"dns", []string{"1.1.1.1", "x"}, false}, {"server_id", []string{"10.0.0.1", "10.0.0.2"}, false},
		{"range", []string{"x"}, false},
	} {
		if err := set.Check(tt.name, tt.args...); (err == nil) != tt.ok {
			t.Errorf("%s %v: %v", tt.name, tt.args, err)
		}
	}
}

// TestManyLeases: 10,000 stored leases load, compact and serve.
func TestManyLeases(t *testing.T) {
	s := newSrv(t, leaseFile+" 10.0.0.1 10.0.255.254 3600s --mac2ip --authoritative")
	var b strings.Builder
	b.WriteString("# one-dhcp4v2 leases v1\n")
	for i := 0; i < 10000; i++ {
		m := fmt.Sprintf("02:00:0a:00:%02x:%02x", (i+2)>>8, (i+2)&0xff)
		b.WriteString(onelease.RecordLine(m, fmt.Sprintf("10.0.%d.%d", (i+2)>>8, (i+2)&0xff), s.clk.now().Add(time.Hour)))
	}
	if err := os.MkdirAll(filepath.Dir(s.root.Path(leaseFile)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.root.Path(leaseFile), []byte(b.String()), 0o640); err != nil {
		t.Fatal(err)
	}
	s.start(s.args)
	if n := leasesOf(s); n != 10000 {
		t.Fatalf("%d leases loaded", n)
	}
	if got := s.renew("02:00:0a:00:13:88", "10.0.19.136"); got != "ACK" {
		t.Errorf("renewal of a stored lease: %s", got)
	}
}
