package dhcp4

import (
	"log/slog"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/hypercx/vrouter/pkg/dhcp4/onelease"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

// lastConn keeps the last reply, for the benchmark.
type lastConn struct{ last []byte }

func (c *lastConn) ReadFrom([]byte) (int, net.Addr, error) { return 0, nil, net.ErrClosed }
func (c *lastConn) WriteTo(b []byte, _ *net.UDPAddr) error {
	c.last = append(c.last[:0], b...)
	return nil
}
func (c *lastConn) WriteUnicast(b []byte, _ net.HardwareAddr, _, _ net.IP) error {
	c.last = append(c.last[:0], b...)
	return nil
}
func (c *lastConn) Close() error { return nil }

// BenchmarkDORA is the server's hot path for one client, as perfdhcp drives
// it in relay mode: a relayed DISCOVER and the REQUEST for the offer, each
// parsed, run through the plugin chain (options, onelease: allocation, the
// lease record written to the lease file) and answered. The socket calls
// are not part of it. Profile with
// `go test ./pkg/dhcp4 -run '^$' -bench DORA -cpuprofile cpu.out`.
func BenchmarkDORA(b *testing.B) {
	for _, mode := range []struct {
		name string
		env  []string
	}{
		{"dynamic", []string{"ONEAPP_VNF_DHCP4_MAC2IP_ENABLED=NO"}},
		{"mac2ip", nil},
	} {
		b.Run(mode.name, func(b *testing.B) {
			env := onecontext.FromPairs(append([]string{"ONEAPP_VNF_DHCP4_ENABLED=YES", "ETH1_IP=10.0.0.1", "ETH1_MASK=255.255.0.0",
				"ONEAPP_VNF_DHCP4_ETH1=10.0.0.0/16:10.0.1.1-10.0.254.254"}, mode.env...)...)
			spec, err := FromContext(b.Context(), env)
			if err != nil {
				b.Fatal(err)
			}
			set := onelease.NewSet(onelease.Deps{Root: fsroot.Root(b.TempDir()), Log: slog.New(slog.DiscardHandler),
				LinkMTU: func(string) (int, error) { return 1500, nil }})
			defer set.Close()
			cfgs, err := LoadConfig(Render(spec), set)
			if err != nil {
				b.Fatal(err)
			}
			handlers, err := setup(set, cfgs[0].Plugins)
			if err != nil {
				b.Fatal(err)
			}
			// 10,000 clients, as perfdhcp -R 10000: after the first round
			// every DORA renews a known client's lease.
			const clients = 10000
			discovers := make([][]byte, clients)
			for i := range discovers {
				hw := net.HardwareAddr{0x02, 0x00, 0x0a, 0x00, byte((i + 256) >> 8), byte(i)}
				d, err := dhcpv4.NewDiscovery(hw, dhcpv4.WithGatewayIP(net.IPv4(10, 0, 0, 50)),
					dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer))
				if err != nil {
					b.Fatal(err)
				}
				discovers[i] = d.ToBytes()
			}
			conn := &lastConn{}
			log := slog.New(slog.DiscardHandler)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				handlePacket(conn, handlers, discovers[i%clients], log)
				offer, err := dhcpv4.FromBytes(conn.last)
				if err != nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
					b.Fatalf("no offer: %v", err)
				}
				req, _ := dhcpv4.NewRequestFromOffer(offer)
				handlePacket(conn, handlers, req.ToBytes(), log)
			}
		})
	}
}
