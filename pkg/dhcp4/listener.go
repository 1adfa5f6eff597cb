package dhcp4

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

// PacketConn is a NIC's DHCP socket: requests in, replies out. The real one
// is a UDP socket bound to the NIC plus a packet socket for replies to
// clients that have no address yet; tests use a fake.
type PacketConn interface {
	// ReadFrom reads one datagram.
	ReadFrom(b []byte) (int, net.Addr, error)
	// WriteTo sends a UDP datagram (port 67 to a relay, 68 to a client).
	WriteTo(b []byte, to *net.UDPAddr) error
	// WriteUnicast sends b in a frame to the client's hardware address and
	// the address it is being given (RFC 2131 4.1: the client cannot answer
	// ARP yet).
	WriteUnicast(b []byte, hw net.HardwareAddr, ip, src net.IP) error
	Close() error
}

// Listen opens the DHCP socket of a NIC.
type Listen func(nic string, addr net.UDPAddr) (PacketConn, error)

// rcvBuf is the receive buffer of a NIC's socket.
const rcvBuf = 4 << 20

// sysConn is the real PacketConn.
type sysConn struct {
	udp     *net.UDPConn
	raw     int
	ifindex int
	hw      net.HardwareAddr
	arp     *arpProber
}

// Probe asks the NIC's segment with ARP whether ip is in use.
func (c *sysConn) Probe(ctx context.Context, ip net.IP, wait time.Duration) (net.HardwareAddr, error) {
	return c.arp.Probe(ctx, ip, wait)
}

// ListenNIC binds UDP port 67 on nic only (SO_BINDTODEVICE). Unlike
// coredhcp's listener it sets neither SO_REUSEADDR nor SO_REUSEPORT, so a
// second server on the same NIC fails loudly instead of silently sharing
// the requests (and the leases) with the first.
func ListenNIC(nic string, addr net.UDPAddr) (PacketConn, error) {
	ifi, err := net.InterfaceByName(nic)
	if err != nil {
		return nil, fmt.Errorf("finding interface %s: %w", nic, err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("opening UDP socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "dhcp4-"+nic)
	defer f.Close() // FilePacketConn dups it
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); err != nil {
		return nil, fmt.Errorf("allowing broadcast on %s: %w", nic, err)
	}
	// Room for bursts (a whole rack of VMs booting at once) while a
	// request is being handled; best effort.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	if err := unix.BindToDevice(fd, nic); err != nil {
		return nil, fmt.Errorf("binding to %s: %w", nic, err)
	}
	port := addr.Port
	if port == 0 {
		port = dhcpv4.ServerPort
	}
	sa := &unix.SockaddrInet4{Port: port}
	if ip4 := addr.IP.To4(); ip4 != nil {
		copy(sa.Addr[:], ip4)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("binding UDP port %d on %s: %w", port, nic, err)
	}
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	// Protocol 0: this packet socket only sends, it never receives.
	raw, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("opening packet socket: %w", err)
	}
	return &sysConn{udp: pc.(*net.UDPConn), raw: raw, ifindex: ifi.Index, hw: ifi.HardwareAddr,
		arp: &arpProber{ifindex: ifi.Index, hw: ifi.HardwareAddr}}, nil
}

func (c *sysConn) ReadFrom(b []byte) (int, net.Addr, error) { return c.udp.ReadFrom(b) }

func (c *sysConn) WriteTo(b []byte, to *net.UDPAddr) error {
	_, err := c.udp.WriteToUDP(b, to)
	return err
}

func (c *sysConn) WriteUnicast(b []byte, hw net.HardwareAddr, ip, src net.IP) error {
	pkt := ipv4UDP(src.To4(), ip.To4(), dhcpv4.ServerPort, dhcpv4.ClientPort, b)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: c.ifindex, Halen: uint8(len(hw))}
	copy(sa.Addr[:], hw)
	return unix.Sendto(c.raw, pkt, 0, sa)
}

func (c *sysConn) Close() error {
	return errors.Join(c.udp.Close(), unix.Close(c.raw), c.arp.close())
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ipv4UDP builds an IPv4 header and a UDP header (with checksum) around payload.
func ipv4UDP(src, dst net.IP, sport, dport uint16, payload []byte) []byte {
	if src == nil {
		src = net.IPv4zero.To4()
	}
	ulen := 8 + len(payload)
	pkt := make([]byte, 20+ulen)
	h := pkt[:20]
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(len(pkt)))
	h[6] = 0x40 // don't fragment
	h[8] = 64
	h[9] = unix.IPPROTO_UDP
	copy(h[12:16], src)
	copy(h[16:20], dst)
	binary.BigEndian.PutUint16(h[10:], checksum(h, 0))
	u := pkt[20:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(ulen))
	copy(u[8:], payload)
	// Pseudo-header: addresses, protocol, UDP length.
	var sum uint32
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	sum += unix.IPPROTO_UDP + uint32(ulen)
	cs := checksum(u, sum)
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], cs)
	return pkt
}

func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
