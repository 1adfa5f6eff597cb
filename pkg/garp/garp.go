// Package garp announces IPv4 addresses with gratuitous ARP: an ARP request
// whose sender and target address are the announced one, broadcast on a
// link. Neighbours that cache the address (the upstream gateway, the other
// hosts of the segment) update it to this link's MAC at once, instead of
// sending to the previous holder until their cache entry expires. It is
// what keepalived does for the VIPs on a takeover; SDNAT4's public
// addresses live on lo, outside keepalived, and need it too.
package garp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Announce broadcasts one gratuitous ARP request for each address on the
// link dev, repeated count times (at least once).
func Announce(dev string, addrs []netip.Addr, count int) error {
	if len(addrs) == 0 {
		return nil
	}
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return fmt.Errorf("finding link %s: %w", dev, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("link %s has no Ethernet address", dev)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return fmt.Errorf("opening a packet socket: %w", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{
		Protocol: htons(unix.ETH_P_ARP),
		Ifindex:  ifi.Index,
		Halen:    6,
		Addr:     [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	if count < 1 {
		count = 1
	}
	for i := 0; i < count; i++ {
		for _, a := range addrs {
			if !a.Is4() {
				continue
			}
			if err := unix.Sendto(fd, Frame(ifi.HardwareAddr, a), 0, to); err != nil {
				return fmt.Errorf("announcing %s on %s: %w", a, dev, err)
			}
		}
	}
	return nil
}

// Frame is the Ethernet frame of a gratuitous ARP request for addr from mac.
func Frame(mac net.HardwareAddr, addr netip.Addr) []byte {
	b := make([]byte, 42)
	copy(b[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // destination
	copy(b[6:12], mac)                                       // source
	binary.BigEndian.PutUint16(b[12:14], unix.ETH_P_ARP)
	binary.BigEndian.PutUint16(b[14:16], 1)      // hardware: Ethernet
	binary.BigEndian.PutUint16(b[16:18], 0x0800) // protocol: IPv4
	b[18], b[19] = 6, 4
	binary.BigEndian.PutUint16(b[20:22], 1) // request
	ip := addr.As4()
	copy(b[22:28], mac)   // sender hardware address
	copy(b[28:32], ip[:]) // sender protocol address
	// target hardware address left zero
	copy(b[38:42], ip[:]) // target protocol address: the same
	return b
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
