package garp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

func TestFrame(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:cb:00:71:02")
	got := Frame(mac, netip.MustParseAddr("203.0.113.20"))
	want := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0xcb, 0x00, 0x71, 0x02, 0x08, 0x06, // Ethernet
		0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // ARP request, Ethernet/IPv4
		0x02, 0x00, 0xcb, 0x00, 0x71, 0x02, 203, 0, 113, 20, // sender
		0, 0, 0, 0, 0, 0, 203, 0, 113, 20, // target: the same address
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("frame\n got % x\nwant % x", got, want)
	}
}

func TestAnnounceNothing(t *testing.T) {
	if err := Announce("no-such-link", nil, 1); err != nil {
		t.Fatalf("no address to announce: %v", err)
	}
	if err := Announce("no-such-link", []netip.Addr{netip.MustParseAddr("192.0.2.1")}, 1); err == nil {
		t.Fatal("a missing link is an error")
	}
}
