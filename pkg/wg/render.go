package wg

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/hypercx/vrouter/pkg/cli"
)

// DesiredPeer is a peer as the server's device knows it.
type DesiredPeer struct {
	Index  int
	Public wgtypes.Key
	PSK    Secret
	Addr   netip.Addr // AllowedIPs: this /32
	New    bool
}

// Desired is the device one-wg converges to.
type Desired struct {
	Device string
	Addr   netip.Prefix // the server's address on the device
	Port   int
	Key    Secret
	NewKey bool
	Peers  []DesiredPeer
	// Sysctl is net.ipv4.conf.<device>.forwarding = 1: the device forwards
	// what its peers send to the private network.
	Sysctl map[string]string
}

// ForwardingKey is the forwarding sysctl of dev.
func ForwardingKey(dev string) string { return "net.ipv4.conf." + dev + ".forwarding" }

// Render is the device for spec and the resolved configuration.
func Render(spec Spec, cfg Config) Desired {
	d := Desired{
		Device: spec.Device, Addr: cfg.Addr, Port: int(cfg.Port), Key: cfg.Key, NewKey: cfg.New,
		Sysctl: map[string]string{ForwardingKey(spec.Device): "1"},
	}
	for _, p := range cfg.Peers {
		d.Peers = append(d.Peers, DesiredPeer{Index: p.Index, Public: p.Key.Public(), PSK: p.PSK, Addr: p.Addr, New: p.New})
	}
	return d
}

func hostNet(a netip.Addr) net.IPNet {
	return net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

// Changes is the wgctrl configuration that turns live into d, touching
// only what differs (a peer that is already right keeps its session), and
// one line per change for the log. A nil live device gets everything.
func (d Desired) Changes(live *wgtypes.Device) (wgtypes.Config, []string) {
	var cfg wgtypes.Config
	var what []string
	if live == nil {
		live = &wgtypes.Device{}
	}
	if live.PrivateKey != d.Key.Key() {
		k := d.Key.Key()
		cfg.PrivateKey = &k
		what = append(what, "server key "+d.Key.Public().String())
	}
	if live.ListenPort != d.Port {
		p := d.Port
		cfg.ListenPort = &p
		what = append(what, "listen port "+strconv.Itoa(d.Port))
	}
	have := map[wgtypes.Key]wgtypes.Peer{}
	for _, p := range live.Peers {
		have[p.PublicKey] = p
	}
	for _, p := range d.Peers {
		lp, ok := have[p.Public]
		delete(have, p.Public)
		if ok && lp.PresharedKey == p.PSK.Key() && len(lp.AllowedIPs) == 1 && lp.AllowedIPs[0].String() == netip.PrefixFrom(p.Addr, 32).String() {
			continue
		}
		psk := p.PSK.Key()
		cfg.Peers = append(cfg.Peers, wgtypes.PeerConfig{
			PublicKey: p.Public, PresharedKey: &psk, ReplaceAllowedIPs: true, AllowedIPs: []net.IPNet{hostNet(p.Addr)},
		})
		if ok {
			what = append(what, fmt.Sprintf("peer %d (%s) updated", p.Index, p.Addr))
		} else {
			what = append(what, fmt.Sprintf("peer %d (%s) added", p.Index, p.Addr))
		}
	}
	var gone []wgtypes.Key
	for k := range have {
		gone = append(gone, k)
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].String() < gone[j].String() })
	for _, k := range gone {
		cfg.Peers = append(cfg.Peers, wgtypes.PeerConfig{PublicKey: k, Remove: true})
		what = append(what, "peer "+k.String()+" removed")
	}
	return cfg, what
}

// Artefacts are what render prints. Key material never appears: private
// keys and preshared keys print as "(secret)", keys this start would
// generate as "(new)"; public keys print whole. `one-wg peer N` is the
// command that shows a client's configuration with its private key.
func Artefacts(spec Spec, res Resolved) []cli.Artefact {
	d := Render(spec, res.Config)
	var wg bytes.Buffer
	fmt.Fprintf(&wg, "[Interface]\nListenPort = %d\nPrivateKey = %s\n# PublicKey = %s\n", d.Port, secretOf(d.Key, d.NewKey), publicOf(d.Key.Public(), d.NewKey))
	for _, p := range d.Peers {
		fmt.Fprintf(&wg, "\n[Peer]\n# peer %d\nPublicKey = %s\nPresharedKey = %s\nAllowedIPs = %s\n",
			p.Index, publicOf(p.Public, p.New), secretOf(p.PSK, p.New), netip.PrefixFrom(p.Addr, 32))
	}
	arts := []cli.Artefact{
		{Target: "wg:" + d.Device, Body: wg.Bytes()},
		{Target: "addr:" + d.Device, Body: []byte(d.Addr.String() + " label " + d.Device + "\n")},
		{Target: "sysctl", Body: []byte(ForwardingKey(d.Device) + " = 1\n")},
	}
	var og bytes.Buffer
	c := res.Config
	for _, p := range c.Peers {
		fmt.Fprintf(&og, "%s%d = (secret: peer %d's configuration, base64)\n", AttrPeer, p.Index, p.Index)
	}
	fmt.Fprintf(&og, "%s = (secret: the server configuration, base64)\n", AttrServer)
	if res.Plan.Changed {
		fmt.Fprintf(&og, "%s = (the time of start)\n", AttrTimestamp)
	} else {
		fmt.Fprintf(&og, "%s = %d\n", AttrTimestamp, res.Plan.Timestamp)
	}
	arts = append(arts, cli.Artefact{Target: "onegate:user-template", Body: og.Bytes()})
	for _, p := range c.Peers {
		var b bytes.Buffer
		fmt.Fprintf(&b, "[Interface]\nAddress    = %s\nPrivateKey = %s\n\n", netip.PrefixFrom(p.Addr, c.Addr.Bits()), secretOf(p.Key, p.New))
		fmt.Fprintf(&b, "[Peer]\nEndpoint     = %s\nPublicKey    = %s\nPresharedKey = %s\nAllowedIPs   = %s, %s\n",
			spec.EndpointAddr(), publicOf(c.Key.Public(), c.New), secretOf(p.PSK, p.New), spec.Private, netip.PrefixFrom(c.Addr.Addr(), 32))
		arts = append(arts, cli.Artefact{Target: "peer:" + strconv.Itoa(p.Index), Body: b.Bytes()})
	}
	return arts
}

func secretOf(_ Secret, isNew bool) string {
	if isNew {
		return "(secret, new)"
	}
	return "(secret)"
}

func publicOf(k wgtypes.Key, isNew bool) string {
	if isNew {
		return "(new)"
	}
	return k.String()
}
