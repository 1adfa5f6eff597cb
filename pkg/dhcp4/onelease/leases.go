package onelease

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// mac is an Ethernet client hardware address.
type mac [6]byte

func (m mac) String() string { return net.HardwareAddr(m[:]).String() }

type state uint8

const (
	offered  state = iota // held for a client between OFFER and REQUEST, never persisted
	bound                 // acknowledged
	declined              // reported in use by a client (DECLINE); held by nobody
)

type lease struct {
	mac      mac
	ip       uint32
	expiry   time.Time
	state    state
	hostname string
}

func (l *lease) expired(now time.Time) bool { return !now.Before(l.expiry) }

// Config is one onelease instance: the arguments of the `onelease` plugin.
type Config struct {
	File          string // lease log
	Start, End    netip.Addr
	LeaseTime     time.Duration
	Excluded      []netip.Addr
	MAC2IP        bool
	MACPrefix     [2]byte
	Authoritative bool
}

// How long an offered address is held for the client it was offered to, and
// how long an address a client declined (found in use) is kept out of the pool.
const (
	offerHold   = time.Minute
	declineHold = 10 * time.Minute
)

// Leases is the lease database of one server (one NIC). The handler is
// safe for concurrent use.
type Leases struct {
	cfg        Config
	start, end uint32
	excluded   map[uint32]bool
	now        func() time.Time
	log        *slog.Logger
	store      *store

	mu     sync.Mutex
	byMAC  map[mac]*lease
	byIP   map[uint32]*lease
	cursor uint32 // where the next dynamic search starts (downwards)
	// warned are the foreign MACs already logged at warning level, so a
	// client retrying (or a flood of made-up MACs) cannot fill the log.
	warned map[mac]bool
}

// maxWarned bounds warned; later foreign MACs are logged at debug level.
const maxWarned = 1024

// Load reads the lease log of cfg, drops what no longer fits (expired,
// outside the pool, excluded) with a warning, compacts the log and returns
// the database, ready to serve.
func Load(cfg Config, now func() time.Time, log *slog.Logger, syncEvery time.Duration) (*Leases, error) {
	l := &Leases{
		cfg: cfg, start: u32(cfg.Start), end: u32(cfg.End), excluded: map[uint32]bool{},
		now: now, log: log, byMAC: map[mac]*lease{}, byIP: map[uint32]*lease{}, warned: map[mac]bool{},
	}
	l.cursor = l.end
	for _, a := range cfg.Excluded {
		l.excluded[u32(a)] = true
	}
	recs, bad, torn, err := readLog(cfg.File)
	if err != nil {
		return nil, err
	}
	if torn {
		log.Warn("lease file ends with a torn record (interrupted write); ignored it", "file", cfg.File)
	}
	if bad > 0 {
		log.Warn("lease file has corrupt records; ignored them", "file", cfg.File, "records", bad)
	}
	t := now()
	var dropped []string
	for _, r := range recs {
		ip := u32(r.ip)
		switch r.op {
		case opBound:
			l.bind(r.mac, ip, bound, r.expiry, r.hostname)
		case opFree:
			if x := l.byMAC[r.mac]; x != nil && x.ip == ip {
				x.expiry = r.expiry
			}
		case opDeclined:
			l.markDeclined(ip, r.expiry, r.mac)
		}
	}
	for ip, x := range l.byIP {
		switch {
		case x.expired(t):
			l.remove(x)
		case !l.usable(ip) || (x.state != declined && l.foreign(x.mac)):
			// Bug §14.27 of the original: an old lease outside a new pool,
			// or newly excluded, aborted startup. Drop it instead, and a
			// lease given while MAC2IP was off to a MAC without the prefix.
			dropped = append(dropped, fmt.Sprintf("%s=%s", x.mac, addr(ip)))
			l.remove(x)
		}
	}
	if len(dropped) > 0 {
		sort.Strings(dropped)
		log.Warn("dropped stored leases that are outside the pool, now excluded, or of a MAC without the MAC2IP prefix", "file", cfg.File, "count", len(dropped), "leases", strings.Join(first(dropped, 10), ","))
	}
	if l.store, err = openStore(cfg.File, l.liveRecords(), syncEvery); err != nil {
		return nil, err
	}
	log.Info("leases loaded", "file", cfg.File, "active", len(l.byIP), "records_read", len(recs), "pool", cfg.Start.String()+"-"+cfg.End.String())
	return l, nil
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "…")
	}
	return s
}

// Close flushes and closes the lease file.
func (l *Leases) Close() error { return l.store.Close() }

// liveRecords lists every lease worth keeping, sorted by address.
func (l *Leases) liveRecords() []record {
	out := make([]record, 0, len(l.byIP))
	for _, x := range l.byIP {
		switch x.state {
		case bound:
			out = append(out, record{op: opBound, mac: x.mac, ip: addr(x.ip), expiry: x.expiry, hostname: x.hostname})
		case declined:
			out = append(out, record{op: opDeclined, mac: x.mac, ip: addr(x.ip), expiry: x.expiry})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ip.Less(out[j].ip) })
	return out
}

// Lease is one active lease, for status and tests.
type Lease struct {
	MAC      string
	IP       netip.Addr
	Expiry   time.Time
	Hostname string
}

// Active lists the acknowledged, unexpired leases sorted by address.
func (l *Leases) Active() []Lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	var out []Lease
	for _, x := range l.byIP {
		if x.state == bound && !x.expired(t) {
			out = append(out, Lease{MAC: x.mac.String(), IP: addr(x.ip), Expiry: x.expiry, Hostname: x.hostname})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP.Less(out[j].IP) })
	return out
}

func (l *Leases) usable(ip uint32) bool {
	return ip >= l.start && ip <= l.end && !l.excluded[ip]
}

// freeFor reports whether ip may go to m: usable, and held by nobody else
// (or only by a lapsed lease).
func (l *Leases) freeFor(ip uint32, m mac, now time.Time) bool {
	if !l.usable(ip) {
		return false
	}
	x := l.byIP[ip]
	// A declined address may go to the host an ARP probe found holding it
	// (x.mac, zero after a DECLINE): a client of the other router renewing.
	return x == nil || x.expired(now) || (x.mac == m && (x.state != declined || m != mac{}))
}

// isCandidate reports whether ip is m's MAC2IP address.
func (l *Leases) isCandidate(m mac, ip uint32) bool {
	cand, ok := l.candidate(m)
	return ok && cand == ip
}

// foreign reports whether MAC2IP is on and m lacks its prefix. Such a
// client is not a NIC the cloud made and gets no lease at all: the guide's
// "otherwise no IPv4 address will be assigned". With MAC2IP off every
// client is served from the pool.
func (l *Leases) foreign(m mac) bool {
	return l.cfg.MAC2IP && (m[0] != l.cfg.MACPrefix[0] || m[1] != l.cfg.MACPrefix[1])
}

// candidate is the MAC2IP address of m: its low four bytes, when its first
// two are the prefix.
func (l *Leases) candidate(m mac) (uint32, bool) {
	if !l.cfg.MAC2IP || m[0] != l.cfg.MACPrefix[0] || m[1] != l.cfg.MACPrefix[1] {
		return 0, false
	}
	return uint32(m[2])<<24 | uint32(m[3])<<16 | uint32(m[4])<<8 | uint32(m[5]), true
}

// choose decides the address for m without changing anything.
//
//  1. A MAC with the MAC2IP prefix gets the address in its low four bytes
//     when that is in the pool, not excluded and not held by another client.
//  2. Otherwise (a MAC2IP miss, or any MAC when MAC2IP is off; a MAC
//     without the prefix never gets here while it is on) the client keeps
//     the address it holds, else gets the one it asks for if free, else a
//     free one, searched from the top of the pool down: HyperCX hands out
//     addresses from the bottom of an address range, so dynamic clients stay
//     out of the way of VMs that will ask for theirs by MAC2IP.
//
// The original gave a MAC2IP miss no answer at all (§14.27), leaving the VM
// without network; here it gets a dynamic address, and the miss is logged.
func (l *Leases) choose(m mac, hint uint32, now time.Time) (uint32, string, error) {
	var miss string
	if cand, ok := l.candidate(m); ok {
		if l.freeFor(cand, m, now) {
			return cand, "", nil
		}
		switch x := l.byIP[cand]; {
		case !l.usable(cand):
			miss = fmt.Sprintf("MAC2IP address %s is outside the pool %s-%s or excluded", addr(cand), l.cfg.Start, l.cfg.End)
		case x.state == declined:
			miss = fmt.Sprintf("MAC2IP address %s was declined as in use", addr(cand))
		default:
			miss = fmt.Sprintf("MAC2IP address %s is leased to %s", addr(cand), x.mac)
		}
	}
	if x := l.byMAC[m]; x != nil && l.freeFor(x.ip, m, now) {
		return x.ip, miss, nil
	}
	if hint != 0 && l.freeFor(hint, m, now) {
		return hint, miss, nil
	}
	if ip, ok := l.search(now); ok {
		return ip, miss, nil
	}
	return 0, miss, errors.New("the pool is exhausted")
}

// search finds a never-used address from the cursor down, wrapping; failing
// that, the address whose lease lapsed first.
func (l *Leases) search(now time.Time) (uint32, bool) {
	size := uint64(l.end) - uint64(l.start) + 1
	ip := l.cursor
	for i := uint64(0); i < size; i++ {
		if ip < l.start || ip > l.end {
			ip = l.end
		}
		if !l.excluded[ip] && l.byIP[ip] == nil {
			l.cursor = ip - 1
			return ip, true
		}
		ip--
	}
	var best *lease
	for _, x := range l.byIP {
		if x.expired(now) && l.usable(x.ip) && (best == nil || x.expiry.Before(best.expiry)) {
			best = x
		}
	}
	if best == nil {
		return 0, false
	}
	return best.ip, true
}

// bind records that m holds ip, taking it from whoever held it before.
func (l *Leases) bind(m mac, ip uint32, st state, expiry time.Time, hostname string) *lease {
	if x := l.byMAC[m]; x != nil {
		if x.ip == ip {
			x.state, x.expiry, x.hostname = st, expiry, hostname
			return x
		}
		l.remove(x)
	}
	if x := l.byIP[ip]; x != nil {
		l.remove(x)
	}
	x := &lease{mac: m, ip: ip, state: st, expiry: expiry, hostname: hostname}
	l.byMAC[m] = x
	l.byIP[ip] = x
	return x
}

// markDeclined keeps ip out of the pool until then; holder, when not zero,
// is the host an ARP probe found answering for it, which may still take it.
func (l *Leases) markDeclined(ip uint32, until time.Time, holder mac) {
	if x := l.byIP[ip]; x != nil {
		l.remove(x)
	}
	l.byIP[ip] = &lease{ip: ip, mac: holder, state: declined, expiry: until}
}

func (l *Leases) remove(x *lease) {
	if l.byIP[x.ip] == x {
		delete(l.byIP, x.ip)
	}
	if x.state != declined && l.byMAC[x.mac] == x {
		delete(l.byMAC, x.mac)
	}
}

func (l *Leases) persist(r record) {
	if err := l.store.append(r); err != nil {
		// The lease stands: the client renews it, and a renewal of a free
		// address of the pool is acknowledged even without a record.
		l.log.Error("persisting lease", "err", err, "mac", r.mac.String(), "ip", r.ip.String())
		return
	}
	if err := l.store.compactIfLarge(l.liveRecords, len(l.byIP)); err != nil {
		l.log.Error("compacting lease file", "err", err)
	}
}

// clientMAC is the Ethernet address of a request; anything else (another
// hardware type, a multicast or zero address) gets no lease.
func clientMAC(req *dhcpv4.DHCPv4) (mac, bool) {
	var m mac
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return m, false
	}
	copy(m[:], req.ClientHWAddr)
	if m[0]&1 != 0 || m == (mac{}) {
		return m, false
	}
	return m, true
}

// Handler4 is the plugin's handler: OFFER, ACK/NAK, RELEASE, DECLINE and
// INFORM. It must come last in the chain, after server_id (whose option it
// compares with the client's).
func (l *Leases) Handler4(req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
	m, ok := clientMAC(req)
	if !ok {
		l.log.Debug("ignoring a request without an Ethernet client address", "htype", req.HWType, "chaddr", req.ClientHWAddr.String())
		return nil, true
	}
	if l.foreign(m) {
		l.ignoreForeign(m, req)
		return nil, true
	}
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		return l.discover(m, req, resp)
	case dhcpv4.MessageTypeRequest:
		return l.request(m, req, resp)
	case dhcpv4.MessageTypeRelease:
		l.release(m, req)
		return nil, true
	case dhcpv4.MessageTypeDecline:
		l.decline(m, req, resp)
		return nil, true
	case dhcpv4.MessageTypeInform:
		// The client has its address: options only, no lease (RFC 2131 4.3.5).
		resp.YourIPAddr = net.IPv4zero
		resp.Options.Del(dhcpv4.OptionIPAddressLeaseTime)
		return resp, false
	}
	return nil, true
}

// ignoreForeign logs a request from a MAC without the MAC2IP prefix: at
// warning level the first time for each MAC (up to maxWarned), at debug
// level afterwards.
func (l *Leases) ignoreForeign(m mac, req *dhcpv4.DHCPv4) {
	l.mu.Lock()
	first := !l.warned[m] && len(l.warned) < maxWarned
	if first {
		l.warned[m] = true
	}
	l.mu.Unlock()
	p := l.cfg.MACPrefix
	msg := fmt.Sprintf("no lease: the MAC lacks the MAC2IP prefix %02x:%02x (only the cloud's NICs are served while MAC2IP is on)", p[0], p[1])
	if first {
		l.log.Warn(msg, "mac", m.String(), "type", req.MessageType().String())
	} else {
		l.log.Debug(msg, "mac", m.String(), "type", req.MessageType().String())
	}
}

func ipOf(a net.IP) uint32 {
	if v4 := a.To4(); v4 != nil {
		return uint32(v4[0])<<24 | uint32(v4[1])<<16 | uint32(v4[2])<<8 | uint32(v4[3])
	}
	return 0
}

func (l *Leases) discover(m mac, req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	ip, miss, err := l.choose(m, ipOf(req.RequestedIPAddress()), now)
	if miss != "" {
		l.log.Warn("MAC2IP miss: offering a dynamic address instead", "mac", m.String(), "reason", miss)
	}
	if err != nil {
		l.log.Warn("no address to offer", "mac", m.String(), "err", err)
		return nil, true
	}
	if x := l.byMAC[m]; x == nil || x.ip != ip || x.state != bound || x.expired(now) {
		l.bind(m, ip, offered, now.Add(min(offerHold, l.cfg.LeaseTime)), hostname(req))
	}
	l.grant(resp, ip)
	return resp, false
}

func (l *Leases) grant(resp *dhcpv4.DHCPv4, ip uint32) {
	resp.YourIPAddr = addr(ip).AsSlice()
	resp.Options.Update(dhcpv4.OptIPAddressLeaseTime(l.cfg.LeaseTime))
}

func (l *Leases) request(m mac, req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	sid, ours := req.ServerIdentifier(), resp.ServerIdentifier()
	if sid != nil && ours != nil && !sid.Equal(ours) {
		// The client took another server's offer: let ours go.
		if x := l.byMAC[m]; x != nil && x.state == offered {
			l.remove(x)
		}
		return nil, true
	}
	want := ipOf(req.RequestedIPAddress())
	if want == 0 {
		want = ipOf(req.ClientIPAddr)
	}
	if want == 0 {
		l.log.Debug("ignoring a REQUEST that names no address", "mac", m.String())
		return nil, true
	}
	ip, miss, err := l.choose(m, want, now)
	moved := err == nil && ip != want && sid == nil && !l.isCandidate(m, ip) && l.freeFor(want, m, now)
	if moved {
		// A client renewing or rebooting with an address nobody else holds,
		// other than the one on record for it: the record is stale (the
		// client got its address from the other router while this one was
		// backup). Keep the client on its address rather than NAK it and
		// break its connections; the MAC2IP address alone is not negotiable.
		l.log.Info("lease moved to the address the client holds", "mac", m.String(), "from", addr(ip).String(), "to", addr(want).String())
		ip = want
	}
	if err == nil && ip == want {
		prev := l.byMAC[m]
		isNew := prev == nil || prev.ip != ip || prev.state != bound || prev.expired(now)
		x := l.bind(m, ip, bound, now.Add(l.cfg.LeaseTime).Truncate(time.Second), hostname(req))
		l.persist(record{op: opBound, mac: m, ip: addr(ip), expiry: x.expiry, hostname: x.hostname})
		if isNew {
			l.log.Info("lease", "mac", m.String(), "ip", addr(ip).String(), "hostname", x.hostname, "expires", x.expiry.UTC().Format(time.RFC3339))
		}
		if miss != "" {
			l.log.Warn("MAC2IP miss: leased a dynamic address instead", "mac", m.String(), "ip", addr(ip).String(), "reason", miss)
		}
		l.grant(resp, ip)
		return resp, false
	}
	// A selecting client (it names our server) always learns its offer is
	// gone; otherwise only an authoritative server speaks up (RFC 2131 4.3.2).
	if !l.cfg.Authoritative && sid == nil {
		return nil, true
	}
	why := fmt.Sprintf("address %s is not available to this client", addr(want))
	if err == nil {
		why = fmt.Sprintf("address %s is not available to this client; ask again for %s", addr(want), addr(ip))
	}
	l.log.Info("NAK", "mac", m.String(), "requested", addr(want).String(), "reason", why)
	return nak(req, resp, why), true
}

// nak replaces resp by a DHCPNAK carrying only what RFC 2131 table 3 allows.
func nak(req, resp *dhcpv4.DHCPv4, msg string) *dhcpv4.DHCPv4 {
	n, err := dhcpv4.NewReplyFromRequest(req, dhcpv4.WithMessageType(dhcpv4.MessageTypeNak))
	if err != nil {
		return nil
	}
	if sid := resp.ServerIdentifier(); sid != nil {
		n.UpdateOption(dhcpv4.OptServerIdentifier(sid))
	}
	n.UpdateOption(dhcpv4.OptMessage(msg))
	return n
}

func (l *Leases) release(m mac, req *dhcpv4.DHCPv4) {
	l.mu.Lock()
	defer l.mu.Unlock()
	x := l.byMAC[m]
	if x == nil || x.state != bound || x.ip != ipOf(req.ClientIPAddr) {
		return
	}
	// Keep the record, lapsed: the same client gets the same address back
	// while nobody else has taken it.
	x.expiry = l.now().Truncate(time.Second)
	l.persist(record{op: opFree, mac: m, ip: addr(x.ip), expiry: x.expiry})
	l.log.Info("released", "mac", m.String(), "ip", addr(x.ip).String())
}

func (l *Leases) decline(m mac, req, resp *dhcpv4.DHCPv4) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sid, ours := req.ServerIdentifier(), resp.ServerIdentifier(); sid != nil && ours != nil && !sid.Equal(ours) {
		return
	}
	ip := ipOf(req.RequestedIPAddress())
	x := l.byMAC[m]
	// Only the client the address was given to can take it out of the pool.
	if x == nil || x.ip != ip || ip == 0 {
		return
	}
	until := l.now().Add(declineHold).Truncate(time.Second)
	l.markDeclined(ip, until, mac{})
	l.persist(record{op: opDeclined, ip: addr(ip), expiry: until})
	l.log.Warn("address declined by the client (in use by another host); kept out of the pool", "mac", m.String(), "ip", addr(ip).String(), "until", until.UTC().Format(time.RFC3339))
}

// hostname is the client's host name, reduced to what is safe to store and log.
func hostname(req *dhcpv4.DHCPv4) string {
	h := req.HostName()
	var b strings.Builder
	for _, r := range h {
		if b.Len() >= 63 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
