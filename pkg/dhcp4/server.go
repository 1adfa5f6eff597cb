package dhcp4

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/coredhcp/coredhcp/config"
	"github.com/coredhcp/coredhcp/handler"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// NICState is what the daemon reports about one NIC's server.
type NICState struct {
	Listening bool   `json:"listening"`
	Error     string `json:"error,omitempty"`
}

// Daemon runs one DHCP server per NIC block of the configuration: the
// plugins of the block (a fresh PluginSet each), a socket bound to the NIC,
// and coredhcp's request → handler chain → reply flow. A NIC that cannot be
// served (missing link, unreadable lease file) is retried on its own and
// never stops the others.
type Daemon struct {
	Log        *slog.Logger
	Listen     Listen
	NewPlugins func() PluginSet
	// RetryEvery is how often a NIC that cannot be served is retried.
	RetryEvery time.Duration
	// OnState is called with every NIC's state whenever one changes.
	OnState func(map[string]NICState)
	// ProbeWait is how long an ARP probe of a new address waits for an
	// answer before the OFFER leaves (0: DefaultProbeWait; negative: no
	// probing).
	ProbeWait time.Duration

	mu     sync.Mutex
	states map[string]NICState
}

type nicRun struct {
	cfg    NICConfig
	cancel context.CancelFunc
	done   chan struct{}
}

// Run serves the configuration load returns until ctx ends, loading it
// again on every reload. A configuration that fails to load at start is an
// error; on reload the running servers are kept and the error logged.
func (d *Daemon) Run(ctx context.Context, load func() ([]NICConfig, error), reload <-chan struct{}) error {
	if d.RetryEvery <= 0 {
		d.RetryEvery = 5 * time.Second
	}
	d.states = map[string]NICState{}
	cfgs, err := load()
	if err != nil {
		return err
	}
	running := map[string]*nicRun{}
	stop := func(r *nicRun) {
		r.cancel()
		<-r.done
	}
	apply := func(cfgs []NICConfig) {
		want := map[string]NICConfig{}
		for _, c := range cfgs {
			want[c.NIC] = c
		}
		var started, stopped, kept []string
		for nic, r := range running {
			if c, ok := want[nic]; !ok || !sameBlock(c, r.cfg) {
				stop(r)
				delete(running, nic)
				d.setState(nic, nil)
				stopped = append(stopped, nic)
			}
		}
		for _, c := range cfgs {
			if _, ok := running[c.NIC]; ok {
				kept = append(kept, c.NIC)
				continue
			}
			rctx, cancel := context.WithCancel(ctx)
			r := &nicRun{cfg: c, cancel: cancel, done: make(chan struct{})}
			running[c.NIC] = r
			go func() {
				defer close(r.done)
				d.serveNIC(rctx, c)
			}()
			started = append(started, c.NIC)
		}
		sort.Strings(stopped)
		d.Log.Info("DHCP servers", "started", listOrNone(started), "stopped", listOrNone(stopped), "unchanged", listOrNone(kept))
	}
	apply(cfgs)
	for {
		select {
		case <-ctx.Done():
			for _, r := range running {
				stop(r)
			}
			d.Log.Info("DHCP servers stopped", "nics", len(running))
			return nil
		case <-reload:
			cfgs, err := load()
			if err != nil {
				d.Log.Error("reload failed; the running servers are kept", "err", err)
				continue
			}
			apply(cfgs)
		}
	}
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return fmt.Sprint(s)
}

func (d *Daemon) setState(nic string, st *NICState) {
	d.mu.Lock()
	if st == nil {
		delete(d.states, nic)
	} else {
		d.states[nic] = *st
	}
	snap := make(map[string]NICState, len(d.states))
	for k, v := range d.states {
		snap[k] = v
	}
	d.mu.Unlock()
	if d.OnState != nil {
		d.OnState(snap)
	}
}

// serveNIC sets up the plugins and the socket of one NIC and serves it until
// ctx ends, retrying what fails.
func (d *Daemon) serveNIC(ctx context.Context, c NICConfig) {
	log := d.Log.With("nic", c.NIC)
	fail := func(what string, err error) bool {
		log.Error(what+"; retrying", "err", err, "every", d.RetryEvery)
		d.setState(c.NIC, &NICState{Error: fmt.Sprintf("%s: %v", what, err)})
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d.RetryEvery):
			return true
		}
	}
	var ps PluginSet
	var handlers []handler.Handler4
	for {
		ps = d.NewPlugins()
		var err error
		if handlers, err = setup(ps, c.Plugins); err == nil {
			break
		}
		_ = ps.Close()
		if !fail("setting up plugins", err) {
			return
		}
	}
	defer func() {
		if err := ps.Close(); err != nil {
			log.Error("closing plugins", "err", err)
		}
	}()
	for {
		conn, err := d.Listen(c.NIC, c.Listen)
		if err != nil {
			if !fail("listening", err) {
				return
			}
			continue
		}
		log.Info("serving DHCP", "plugins", len(handlers))
		d.setState(c.NIC, &NICState{Listening: true})
		wait := d.ProbeWait
		if wait == 0 {
			wait = DefaultProbeWait
		}
		err = d.serveConn(ctx, conn, handlers, log, newProbing(conn, ps, wait, log))
		if ctx.Err() != nil {
			return
		}
		if !fail("reading requests", err) {
			return
		}
	}
}

// setup instantiates the block's plugins in order.
func setup(ps PluginSet, confs []config.PluginConfig) ([]handler.Handler4, error) {
	byName := map[string]func(...string) (handler.Handler4, error){}
	for _, p := range ps.Plugins() {
		if p.Setup4 != nil {
			byName[p.Name] = p.Setup4
		}
	}
	var out []handler.Handler4
	for _, pc := range confs {
		setup, ok := byName[pc.Name]
		if !ok {
			return nil, fmt.Errorf("unknown plugin %q", pc.Name)
		}
		h, err := setup(pc.Args...)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: %w", pc.Name, err)
		}
		out = append(out, h)
	}
	return out, nil
}

// serveConn reads and answers requests one at a time until ctx ends or the
// socket fails. Handling in the reading goroutine keeps each NIC's replies
// in order and costs no goroutine per packet; the lease plugin serialises
// its work anyway. Only an OFFER waiting for an ARP probe (p) is answered
// from a goroutine of its own.
func (d *Daemon) serveConn(ctx context.Context, conn PacketConn, handlers []handler.Handler4, log *slog.Logger, p *probing) error {
	var once sync.Once
	closeConn := func() { once.Do(func() { _ = conn.Close() }) }
	defer closeConn()
	pctx, cancel := context.WithCancel(ctx)
	defer p.drain()
	defer cancel()
	stop := context.AfterFunc(ctx, closeConn)
	defer stop()
	buf := make([]byte, 65536)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		handle(pctx, conn, handlers, buf[:n], log, p)
	}
}

// handlePacket answers one datagram, without probing.
func handlePacket(conn PacketConn, handlers []handler.Handler4, b []byte, log *slog.Logger) {
	handle(context.Background(), conn, handlers, b, log, nil)
}

// handle answers one datagram. Nothing a client sends can take the
// server down: malformed packets are dropped, and a panic in a handler is
// logged and the packet dropped.
func handle(ctx context.Context, conn PacketConn, handlers []handler.Handler4, b []byte, log *slog.Logger, p *probing) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("dropped a request that crashed its handler", "panic", fmt.Sprint(r))
		}
	}()
	req, err := dhcpv4.FromBytes(b)
	if err != nil {
		log.Debug("dropped a malformed packet", "err", err, "bytes", len(b))
		return
	}
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return
	}
	resp := Reply(req, handlers)
	if resp == nil {
		return
	}
	if p.wanted(req, resp) {
		switch p.begin(req) {
		case duplicate:
			return
		case claimed:
			// The reader reuses b: the probe keeps a request of its own.
			own, err := dhcpv4.FromBytes(append([]byte(nil), b...))
			var ownResp *dhcpv4.DHCPv4
			if err == nil {
				ownResp, err = dhcpv4.FromBytes(resp.ToBytes())
			}
			if err != nil {
				p.end(req)
				return
			}
			go p.offer(ctx, conn, handlers, own, ownResp)
			return
		}
	}
	sendLogged(conn, req, resp, log)
}

// sendLogged sends resp; a failure is logged, never fatal.
func sendLogged(conn PacketConn, req, resp *dhcpv4.DHCPv4, log *slog.Logger) {
	if err := send(conn, req, resp); err != nil {
		log.Warn("sending reply", "err", err, "type", resp.MessageType().String(), "mac", req.ClientHWAddr.String())
	}
}

// Reply runs the handler chain on req the way coredhcp's server does, plus
// DECLINE, which coredhcp's server drops before any plugin sees it.
func Reply(req *dhcpv4.DHCPv4, handlers []handler.Handler4) *dhcpv4.DHCPv4 {
	resp := newReply(req)
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		resp.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeOffer))
	case dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeInform:
		resp.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeAck))
	case dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline:
		// The plugins record them; nothing is sent back.
	default:
		return nil
	}
	for _, h := range handlers {
		var stop bool
		if resp, stop = h(req, resp); stop || resp == nil {
			break
		}
	}
	if resp == nil {
		return nil
	}
	switch resp.MessageType() {
	case dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak:
		return resp
	}
	return nil
}

// newReply is dhcpv4.NewReplyFromRequest without its first step, which
// reads a random transaction ID from crypto/rand (behind a context with a
// timeout) only to overwrite it with the request's: a tenth of the server's
// time per request went there.
func newReply(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	resp := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		ClientHWAddr:  req.ClientHWAddr,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: req.GatewayIPAddr,
		Options:       make(dhcpv4.Options, 8),
	}
	// RFC 3046 (relay agent information) and RFC 6842 (client identifier):
	// echoed back as the client or relay sent them.
	for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionRelayAgentInformation, dhcpv4.OptionClientIdentifier} {
		if v := req.Options.Get(code); v != nil {
			resp.UpdateOption(dhcpv4.OptGeneric(code, v))
		}
	}
	return resp
}

// send picks the destination as RFC 2131 4.1 says.
func send(conn PacketConn, req, resp *dhcpv4.DHCPv4) error {
	b := resp.ToBytes()
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	switch {
	case !req.GatewayIPAddr.IsUnspecified():
		return conn.WriteTo(b, &net.UDPAddr{IP: req.GatewayIPAddr, Port: dhcpv4.ServerPort})
	case resp.MessageType() == dhcpv4.MessageTypeNak:
		return conn.WriteTo(b, bcast)
	case !req.ClientIPAddr.IsUnspecified():
		return conn.WriteTo(b, &net.UDPAddr{IP: req.ClientIPAddr, Port: dhcpv4.ClientPort})
	case req.IsBroadcast() || resp.YourIPAddr.IsUnspecified() || len(req.ClientHWAddr) != 6:
		return conn.WriteTo(b, bcast)
	}
	return conn.WriteUnicast(b, req.ClientHWAddr, resp.YourIPAddr, resp.ServerIdentifier())
}
