package onelease

import (
	"net"
	"time"
)

// NeedsProbe reports whether ip, just offered to hw, should first be
// checked on the link: an address of the pool this server has given to no
// one, which is neither hw's current lease nor its MAC2IP address. The
// routers of a failover pair do not share leases, so after a failover such
// an address may be held by a client of the other router that has not
// renewed yet.
func (l *Leases) NeedsProbe(hw net.HardwareAddr, ip net.IP) bool {
	if len(hw) != 6 {
		return false
	}
	var m mac
	copy(m[:], hw)
	v := ipOf(ip)
	if v == 0 || !l.usable(v) {
		return false
	}
	if cand, ok := l.candidate(m); ok && cand == v {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	x := l.byMAC[m]
	return x == nil || x.ip != v || x.state != bound || x.expired(l.now())
}

// InUse takes ip out of the pool for the time a declined address is kept
// out (10 minutes): a host with hardware address by answers for it on the
// link without a lease of this server. The client it was offered to is
// offered another address when it asks again; the host itself may still
// renew it (a client of the other router, after a failover).
func (l *Leases) InUse(ip net.IP, by net.HardwareAddr) {
	v := ipOf(ip)
	if v == 0 || !l.usable(v) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var holder mac
	if len(by) == 6 {
		copy(holder[:], by)
	}
	until := l.now().Add(declineHold).Truncate(time.Second)
	l.markDeclined(v, until, holder)
	l.persist(record{op: opDeclined, mac: holder, ip: addr(v), expiry: until})
	l.log.Warn("address in use on the link without a lease of this server (the other router's client, or a static address); kept out of the pool",
		"ip", addr(v).String(), "held_by", by.String(), "until", until.UTC().Format(time.RFC3339))
}

// pool returns the Leases whose pool holds ip.
func (s *Set) pool(ip net.IP) *Leases {
	v := ipOf(ip)
	for _, l := range s.Leases() {
		if v >= l.start && v <= l.end {
			return l
		}
	}
	return nil
}

// NeedsProbe is Leases.NeedsProbe of the pool holding ip.
func (s *Set) NeedsProbe(hw net.HardwareAddr, ip net.IP) bool {
	l := s.pool(ip)
	return l != nil && l.NeedsProbe(hw, ip)
}

// InUse is Leases.InUse of the pool holding ip.
func (s *Set) InUse(ip net.IP, by net.HardwareAddr) {
	if l := s.pool(ip); l != nil {
		l.InUse(ip, by)
	}
}
