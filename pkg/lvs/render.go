package lvs

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/hypercx/vrouter/pkg/keepalived"
	"github.com/hypercx/vrouter/pkg/lb"
	"github.com/hypercx/vrouter/pkg/netfilter"
)

// ConfigFile is where the virtual servers live (keepalived.conf includes
// conf.d/*.conf).
const ConfigFile = keepalived.LVSFile

// Owner and chain of the firewall marks of all-ports LBs.
const (
	Owner       = "one-lvs"
	ChainFwmark = "LVS-FWMARK"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("").ParseFS(templateFS, "templates/*.tmpl"))

// Skeleton is the ruleset with LVS's chain, empty: what stop removes.
func Skeleton() netfilter.Ruleset {
	return netfilter.Ruleset{
		Owner:  Owner,
		Tables: []netfilter.Table{{Name: "mangle", Chains: []netfilter.Chain{{Name: ChainFwmark}}}},
		Jumps:  []netfilter.Jump{{Table: "mangle", From: "PREROUTING", To: ChainFwmark}},
	}
}

// Desired is what one-lvs applies.
type Desired struct {
	Config []byte
	// Rules marks the traffic of all-ports LBs; Marks says whether there is
	// any (without, the chain is removed).
	Rules netfilter.Ruleset
	Marks bool
}

type virtualServerView struct {
	Index                                      int
	Key, Describe, Scheduler, Method, Protocol string
	Servers                                    []realServerView
}

type realServerView struct {
	Addr                   string
	Port, CheckPort        uint16
	Weight, ULimit, LLimit int
	TCPCheck               bool
}

// Resolver returns the IPv4 addresses of a host name (keepalived and IPVS
// take addresses only).
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// LookupIPv4 is the real Resolver.
func LookupIPv4(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
}

// ResolveHosts replaces the servers given by host name with one server per
// IPv4 address the name has (sorted, without duplicates of the LB's other
// servers). A name that does not resolve is left out and reported.
func ResolveHosts(ctx context.Context, resolve Resolver, lbs []lb.LB) ([]lb.LB, []string) {
	var problems []string
	out := make([]lb.LB, len(lbs))
	for i, l := range lbs {
		var servers []lb.Server
		have := map[string]bool{}
		for _, s := range l.Servers {
			if s.Addr.IsValid() {
				have[l.Key(s)] = true
			}
		}
		for _, s := range l.Servers {
			if s.Addr.IsValid() {
				servers = append(servers, s)
				continue
			}
			addrs, err := resolve(ctx, s.Host)
			var v4 []netip.Addr
			for _, a := range addrs {
				if a = a.Unmap(); a.Is4() && !slices.Contains(v4, a) {
					v4 = append(v4, a)
				}
			}
			if len(v4) == 0 {
				problems = append(problems, fmt.Sprintf("LB%d: server %s (%s) has no IPv4 address (%v); left out until it resolves", l.Index, s.Host, s.Source, err))
				continue
			}
			slices.SortFunc(v4, func(a, b netip.Addr) int { return a.Compare(b) })
			for _, a := range v4 {
				r := s
				r.Host, r.Addr = a.String(), a
				if !have[l.Key(r)] {
					have[l.Key(r)] = true
					servers = append(servers, r)
				}
			}
		}
		l.Servers = servers
		out[i] = l
	}
	return out, problems
}

// Render builds lvs.conf and the firewall marks for the LBs (static merged
// with dynamic, names resolved). Every value was validated by the lb
// package: nothing from the context or OneGate is written verbatim.
func Render(sp Spec, lbs []lb.LB) Desired {
	var views []virtualServerView
	rs := Skeleton()
	chain := &rs.Tables[0].Chains[0]
	for _, l := range lbs {
		o := sp.options(l.Index)
		v := virtualServerView{Index: l.Index, Scheduler: o.Scheduler, Method: o.Method}
		if l.Port == 0 {
			mark := uint32(sp.FwmarkOffset + l.Index)
			v.Key = "fwmark " + strconv.FormatUint(uint64(mark), 10)
			v.Describe = fmt.Sprintf("every %s port of %s (firewall mark %d)", o.Protocol, l.Addr, mark)
			// keepalived ignores (and warns about) a protocol on a
			// firewall-mark service: the mark rule chooses the protocol.
			chain.Rules = append(chain.Rules, fmt.Sprintf("-d %s/32 -p %s -j MARK --set-xmark 0x%x/0xffffffff", l.Addr, strings.ToLower(o.Protocol), mark))
		} else {
			v.Key = l.Addr.String() + " " + strconv.Itoa(int(l.Port))
			v.Describe = fmt.Sprintf("%s %s", o.Protocol, netip.AddrPortFrom(l.Addr, l.Port))
			v.Protocol = o.Protocol
		}
		v.Describe += ", " + o.Method + ", " + o.Scheduler
		for _, s := range l.Servers {
			if !s.Addr.IsValid() {
				continue // a name ResolveHosts could not resolve
			}
			port, check := s.Port, s.Port
			switch {
			case l.Port == 0:
				// A firewall-mark service keeps the client's port (keepalived
				// clears a real server's port there): the server's port only
				// says where its TCP check connects.
				port = 0
			case port == 0:
				// A server without a port takes the LB's.
				port, check = l.Port, l.Port
			}
			v.Servers = append(v.Servers, realServerView{
				Addr: s.Addr.String(), Port: port, CheckPort: check, Weight: s.Weight, ULimit: s.ULimit, LLimit: s.LLimit,
				// As the original: a TCP connect check where there is a
				// port to connect to, a ping otherwise.
				TCPCheck: o.Protocol == "TCP" && check != 0,
			})
		}
		views = append(views, v)
	}
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, "lvs.conf.tmpl", views); err != nil {
		panic("lvs: rendering lvs.conf: " + err.Error())
	}
	return Desired{Config: b.Bytes(), Rules: rs, Marks: len(chain.Rules) > 0}
}

// Empty is lvs.conf without any LB.
func Empty() []byte { return Render(Spec{}, nil).Config }
