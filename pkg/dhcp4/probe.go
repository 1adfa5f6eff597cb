package dhcp4

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/coredhcp/coredhcp/handler"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Prober asks the link whether an address is in use. The real PacketConn
// implements it with ARP; a PacketConn without it offers without probing.
type Prober interface {
	// Probe sends an ARP probe for ip (RFC 5227: sender address 0.0.0.0)
	// and returns the hardware address of a host that answers for ip
	// within wait, nil when none does.
	Probe(ctx context.Context, ip net.IP, wait time.Duration) (net.HardwareAddr, error)
}

// Conflicts is what the lease plugins (onelease.Set) offer the prober.
type Conflicts interface {
	// NeedsProbe: ip, just offered to hw, is none of hw's own addresses.
	NeedsProbe(hw net.HardwareAddr, ip net.IP) bool
	// InUse takes ip out of the pool: host by answers for it.
	InUse(ip net.IP, by net.HardwareAddr)
}

// Probing defaults.
const (
	// DefaultProbeWait is how long a host has to answer an ARP probe.
	// Hosts on the segment answer within a millisecond; the wait delays
	// only the OFFER of an address new to this server.
	DefaultProbeWait = 150 * time.Millisecond
	// maxProbes bounds the probes under way per NIC; beyond it (a flood
	// of new clients) addresses are offered unprobed.
	maxProbes = 4096
	// probeAttempts bounds the addresses tried for one DISCOVER.
	probeAttempts = 3
	// verifiedFor: an address found free is not probed again for this
	// long (a client retransmitting its DISCOVER).
	verifiedFor = 10 * time.Second
)

// probing checks, before an OFFER leaves, that no host on the link already
// answers for the offered address. The answer to a DISCOVER whose address
// needs a probe is sent from the probe's goroutine, so the NIC's reader
// goes on with other requests meanwhile; a retransmitted DISCOVER of a
// client being probed for is dropped.
type probing struct {
	prober    Prober
	conflicts Conflicts
	wait      time.Duration
	log       *slog.Logger

	wg       sync.WaitGroup
	mu       sync.Mutex
	clients  map[string]bool      // hardware addresses being probed for
	verified map[string]time.Time // addresses found free, by when
}

func newProbing(conn PacketConn, ps PluginSet, wait time.Duration, log *slog.Logger) *probing {
	pr, ok := conn.(Prober)
	cs, ok2 := ps.(Conflicts)
	if !ok || !ok2 || wait <= 0 {
		return nil
	}
	return &probing{prober: pr, conflicts: cs, wait: wait, log: log, clients: map[string]bool{}, verified: map[string]time.Time{}}
}

// wanted reports whether resp must wait for a probe: an OFFER to a client
// on the link (a relayed one is on another segment) of an address the
// lease plugin calls new, not found free a moment ago.
func (p *probing) wanted(req, resp *dhcpv4.DHCPv4) bool {
	if p == nil || resp.MessageType() != dhcpv4.MessageTypeOffer || !req.GatewayIPAddr.IsUnspecified() {
		return false
	}
	ip := resp.YourIPAddr.To4()
	if ip == nil || ip.IsUnspecified() || !p.conflicts.NeedsProbe(req.ClientHWAddr, ip) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.verified[ip.String()]; ok && time.Since(t) < verifiedFor {
		return false
	}
	return true
}

// What begin decided.
type claim int

const (
	claimed   claim = iota // probe, then offer
	duplicate              // a probe for this client is under way: drop
	full                   // too many probes under way: offer unprobed
)

// begin claims the probe for req's client.
func (p *probing) begin(req *dhcpv4.DHCPv4) claim {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := req.ClientHWAddr.String()
	switch {
	case p.clients[k]:
		return duplicate
	case len(p.clients) >= maxProbes:
		return full
	}
	p.clients[k] = true
	p.wg.Add(1)
	return claimed
}

func (p *probing) end(req *dhcpv4.DHCPv4) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.clients, req.ClientHWAddr.String())
	p.wg.Done()
}

// drain waits for the probes under way (they end with the NIC's context).
func (p *probing) drain() {
	if p != nil {
		p.wg.Wait()
	}
}

func (p *probing) free(ip net.IP) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if len(p.verified) > maxProbes {
		for k, t := range p.verified {
			if now.Sub(t) >= verifiedFor {
				delete(p.verified, k)
			}
		}
		// Still full (a flood of new clients): forget them all rather
		// than scan the map again on every probe; they are probed again.
		if len(p.verified) > maxProbes/2 {
			clear(p.verified)
		}
	}
	p.verified[ip.String()] = now
}

// offer probes resp's address and sends resp when nobody answers for it.
// When a host does, the address leaves the pool and the request is
// answered again, with another address, up to probeAttempts times.
func (p *probing) offer(ctx context.Context, conn PacketConn, handlers []handler.Handler4, req, resp *dhcpv4.DHCPv4) {
	defer p.end(req)
	for attempt := 1; ; attempt++ {
		ip := resp.YourIPAddr.To4()
		holder, err := p.prober.Probe(ctx, ip, p.wait)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			// The link cannot be asked: offer as a server without
			// probing would.
			p.log.Warn("ARP probe failed; offering without it", "ip", ip.String(), "err", err)
		case holder != nil && !bytes.Equal(holder, req.ClientHWAddr):
			p.conflicts.InUse(ip, holder)
			if attempt >= probeAttempts {
				p.log.Warn("offered addresses in use on the link; no offer this time", "mac", req.ClientHWAddr.String(), "tries", attempt)
				return
			}
			if resp = Reply(req, handlers); resp == nil {
				return
			}
			if !p.wanted(req, resp) {
				break
			}
			continue
		default:
			p.free(ip)
		}
		sendLogged(conn, req, resp, p.log)
		return
	}
}
