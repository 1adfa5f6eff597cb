// Package conntrackd renders the configuration of conntrackd, which keeps
// the connection-tracking tables of the router instances in step (FTFW
// over the sync NIC), so connections through NAT survive a failover.
//
// The backup writes the states it receives straight into its kernel table
// (DisableExternalCache): after a failover the new master already knows
// every connection and needs no commit. For the translated addresses to be
// valid on both routers, NAT4 translates to the outgoing NIC's VIP rather
// than to each router's own address (pkg/nat4).
package conntrackd

import (
	"bytes"
	"embed"
	"fmt"
	"net/netip"
	"strings"
	"text/template"

	"github.com/hypercx/vrouter/pkg/keepalived"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

// Context variables.
const (
	VarEnabled   = "ONEAPP_VNF_CONNTRACKD_ENABLED"
	VarInterface = "ONEAPP_VNF_CONNTRACKD_INTERFACE"
)

// Paths and names on the router.
const (
	ConfigFile = "/etc/conntrackd/conntrackd.conf"
	RunDir     = "/run/conntrackd"
	Service    = "conntrackd"
	// MulticastGroup is conntrackd's default group; the port is derived
	// from the VRID so two virtual routers sharing a network never merge
	// their tables.
	MulticastGroup = "225.0.0.50"
	basePort       = 3780
)

// Spec is the sync configuration of this router instance.
type Spec struct {
	Enabled bool
	// Interface is the sync NIC and Addr this router's address on it.
	Interface string
	Addr      netip.Addr
	// Peer, when valid, is the one router to sync with over UDP unicast
	// (the sync NIC's only unicast VRRP peer); otherwise multicast.
	Peer netip.Addr
	Port int
	// Ignore are this router's own addresses: connections to or from the
	// router itself are not synced.
	Ignore []netip.Addr
	// Warnings for the log.
	Warnings []string
}

// FromContext parses the conntrackd variables. It needs the VRRP
// configuration: without VRRP there is nobody to sync with.
func FromContext(env onecontext.Env, vrrp keepalived.Config) (Spec, error) {
	enabled, err := env.Bool(VarEnabled, false)
	if err != nil {
		return Spec{}, err
	}
	top, err := env.Topology()
	if err != nil {
		return Spec{}, err
	}
	nic := strings.ToLower(strings.TrimSpace(env.Get(VarInterface)))
	if nic != "" {
		n, ok := top.NIC(nic)
		switch {
		case !ok:
			return Spec{}, onecontext.Errorf(VarInterface, env.Get(VarInterface), "the context has no NIC %s (known: %s)", nic, strings.Join(top.Names(), " "))
		case !n.HasIP():
			return Spec{}, onecontext.Errorf(VarInterface, env.Get(VarInterface), "%s has no address of its own (ETH%d_IP) to sync from", nic, n.Index)
		}
	}
	s := Spec{Enabled: enabled}
	if !enabled {
		return s, nil
	}
	if vrrp.Single() {
		s.Enabled = false
		s.Warnings = append(s.Warnings, VarEnabled+"=YES but no VRRP instance runs: there is no other router to sync with")
		return s, nil
	}
	first := vrrp.Instances[0]
	if nic == "" {
		nic = first.Interface
	}
	n, _ := top.NIC(nic)
	s.Interface, s.Addr, s.Port = nic, n.IP.Addr(), basePort+first.VRID
	// The sync NIC's unicast VRRP peers (the variable is read even when
	// VRRP itself runs on another NIC of the VRID group).
	peersVar := keepalived.NICVar(nic, keepalived.SuffixUnicastPeers)
	peers, err := keepalived.ParsePeers(peersVar, env.Get(peersVar), s.Addr)
	if err != nil {
		return Spec{}, err
	}
	switch len(peers) {
	case 0:
	case 1:
		s.Peer = peers[0]
	default:
		s.Warnings = append(s.Warnings, fmt.Sprintf("%s lists %d peers; conntrackd unicast syncs with one, so it uses multicast", peersVar, len(peers)))
	}
	for _, x := range top.NICs {
		if x.HasIP() {
			s.Ignore = append(s.Ignore, x.IP.Addr())
		}
	}
	return s, nil
}

//go:embed conntrackd.conf.tmpl
var templateFS embed.FS

var tmpl = template.Must(template.ParseFS(templateFS, "conntrackd.conf.tmpl"))

// Render renders conntrackd.conf.
func Render(s Spec) []byte {
	var b bytes.Buffer
	view := struct {
		Spec
		Group, RunDir string
	}{s, MulticastGroup, RunDir}
	if err := tmpl.Execute(&b, view); err != nil {
		panic("conntrackd: rendering: " + err.Error())
	}
	return b.Bytes()
}
