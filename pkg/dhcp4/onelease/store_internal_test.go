package onelease

import (
	"fmt"
	"hash/crc32"
	"net/netip"
	"testing"
	"time"
)

// A record's line is the documented format (the one fmt wrote before the
// hot path lost it) and parses back to the record.
func TestRecordLine(t *testing.T) {
	for _, r := range []record{
		{op: opBound, mac: mac{0x02, 0x00, 0x0a, 0x00, 0x00, 0x0c}, ip: netip.MustParseAddr("10.0.0.12"), expiry: time.Unix(1_800_003_600, 0), hostname: "vm-1.example"},
		{op: opFree, mac: mac{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}, ip: netip.MustParseAddr("192.168.255.254"), expiry: time.Unix(0, 0)},
		{op: opDeclined, ip: netip.MustParseAddr("10.0.0.9"), expiry: time.Unix(1_800_000_600, 0)},
	} {
		host := r.hostname
		if host == "" {
			host = "-"
		}
		body := fmt.Sprintf("%s %s %s %d %s", r.op, r.mac, r.ip, r.expiry.Unix(), host)
		want := fmt.Sprintf("%s %08x\n", body, crc32.ChecksumIEEE([]byte(body)))
		got := string(r.line())
		if got != want {
			t.Errorf("line %q, want %q", got, want)
		}
		back, err := parseRecord(got[:len(got)-1])
		if err != nil || back != r {
			t.Errorf("%q parsed back as %+v, %v", got, back, err)
		}
	}
}
