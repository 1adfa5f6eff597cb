package keepalived

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// SyncGroup is the name of the sync group that makes every VRRP instance
// of the router change state together (the original's name).
const SyncGroup = "VRouter"

// VIP is a floating address and the NIC it goes on.
type VIP struct {
	Prefix netip.Prefix
	Dev    string
}

// Route is a route keepalived adds with the VIPs (the default route of a
// floating-only NIC with a gateway).
type Route struct {
	Dst     netip.Prefix
	Gateway netip.Addr
	Dev     string
}

// VRRPInstance is one `vrrp_instance`: the NICs sharing a VRID, with VRRP
// running on the first of them that has an address of its own and is not
// skipped.
type VRRPInstance struct {
	Name      string // "ETH1", the upper-case name of Interface
	Interface string // the NIC VRRP runs on
	VRID      int    // 1-255
	Priority  int    // 1-254
	Interval  time.Duration
	// Password is the PASS authentication (VRRPv2 only; at most 8
	// characters). Never logged.
	Password     string
	NoPreempt    bool
	PreemptDelay time.Duration
	// UnicastSrc and UnicastPeers make VRRP unicast (networks that drop
	// multicast); empty peers mean multicast.
	UnicastSrc   netip.Addr
	UnicastPeers []netip.Addr
	VIPs         []VIP
	Routes       []Route
	// NICs are every NIC of the VRID group: Interface, skipped ones and
	// floating-only ones.
	NICs []string
	// Track are the other NICs of the group that carry VIPs: if one goes
	// down the instance goes to fault, so a router that lost a network
	// hands its VIPs over.
	Track []string
}

// Version is the VRRP version: intervals below a second or with a fraction
// need VRRPv3 (centiseconds); whole seconds stay VRRPv2, which has
// authentication and talks to the original's routers.
func (i VRRPInstance) Version() int {
	if i.Interval%time.Second != 0 {
		return 3
	}
	return 2
}

// Config is the VRRP part of the context.
type Config struct {
	// Instances in the order of their first NIC. None when no NIC keepalived
	// manages has a VIP: the router then serves alone.
	Instances []VRRPInstance
	// LinksUp are the floating-only NICs (a VIP, no address of their own),
	// which one-context leaves down and keepalived needs up.
	LinksUp []string
	// Warnings are things the user should know (a password ignored, a VIP
	// nobody manages); they never stop the configuration.
	Warnings []string
}

// Single reports whether the router runs without VRRP.
func (c Config) Single() bool { return len(c.Instances) == 0 }

// VIPs returns every VIP keepalived manages, by NIC.
func (c Config) VIPs() []VIP {
	var out []VIP
	for _, in := range c.Instances {
		out = append(out, in.VIPs...)
	}
	return out
}

// Layout is what a reload cannot change without a failover: the instances,
// their NICs, VRIDs and VRRP versions. Anything else (VIPs, priorities,
// intervals, peers, passwords, preemption) is applied by a reload.
func (c Config) Layout() string {
	if len(c.Instances) == 0 {
		return "none"
	}
	parts := make([]string, len(c.Instances))
	for i, in := range c.Instances {
		parts[i] = fmt.Sprintf("%s %s vrid %d v%d", in.Name, in.Interface, in.VRID, in.Version())
	}
	return strings.Join(parts, ", ")
}

// layoutPrefix starts the vrrp.conf comment line that records the layout,
// so the next configure knows whether a reload is enough.
const layoutPrefix = "# layout: "

// LayoutOf reads the layout recorded in a rendered vrrp.conf ("" when the
// file has none).
func LayoutOf(vrrpConf []byte) string {
	for _, l := range strings.Split(string(vrrpConf), "\n") {
		if s, ok := strings.CutPrefix(l, layoutPrefix); ok {
			return strings.TrimSpace(s)
		}
	}
	return ""
}

type instanceView struct {
	Name, Interface, Interval, PreemptDelay, UnicastSrc, Password string
	VRID, Priority, Version                                       int
	NoPreempt                                                     bool
	Peers, VIPs, Routes, Track                                    []string
}

type vrrpView struct {
	Layout, SyncGroup string
	Members           []string
	Instances         []instanceView
}

// seconds prints a duration the way keepalived reads it: "1", "0.1", "2.5".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// RenderVRRP renders conf.d/vrrp.conf. A sync group is rendered only for two
// instances or more (keepalived rejects a group of one).
func RenderVRRP(c Config) []byte {
	v := vrrpView{Layout: c.Layout(), SyncGroup: SyncGroup}
	if len(c.Instances) > 1 {
		for _, in := range c.Instances {
			v.Members = append(v.Members, in.Name)
		}
	}
	for _, in := range c.Instances {
		iv := instanceView{
			Name: in.Name, Interface: in.Interface, VRID: in.VRID, Priority: in.Priority,
			Interval: seconds(in.Interval), Version: in.Version(), NoPreempt: in.NoPreempt, Track: in.Track,
		}
		if !in.NoPreempt && in.PreemptDelay > 0 {
			iv.PreemptDelay = seconds(in.PreemptDelay)
		}
		if len(in.UnicastPeers) > 0 {
			iv.UnicastSrc = in.UnicastSrc.String()
			for _, p := range in.UnicastPeers {
				iv.Peers = append(iv.Peers, p.String())
			}
		}
		for _, vip := range in.VIPs {
			iv.VIPs = append(iv.VIPs, vip.Prefix.String()+" dev "+vip.Dev)
		}
		for _, r := range in.Routes {
			iv.Routes = append(iv.Routes, fmt.Sprintf("%s via %s dev %s", r.Dst, r.Gateway, r.Dev))
		}
		if in.Version() == 2 {
			iv.Password = in.Password
		}
		v.Instances = append(v.Instances, iv)
	}
	return execute("vrrp.conf.tmpl", v)
}
