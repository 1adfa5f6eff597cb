// Package lvs is one-lvs: a keepalived virtual_server (IPVS) for every load
// balancer of the context (ONEAPP_VNF_LBx_*), with the dynamic real servers
// OneGate reports (ONEGATE_LBx_*), kept fresh by a refresh loop. The
// configuration is /etc/keepalived/conf.d/lvs.conf, judged by `keepalived -t`
// together with the other files of conf.d before it replaces the live one;
// keepalived is reloaded (never restarted: VRRP keeps its state) when it
// changed. An LB without a port balances every port of its address through
// a firewall mark set in the mangle table (chain LVS-FWMARK).
package lvs

import (
	"errors"
	"math"
	"net/netip"
	"strings"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/lb"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

// Context variables.
const (
	VarEnabled      = "ONEAPP_VNF_LB_ENABLED"
	VarOneGate      = "ONEAPP_VNF_LB_ONEGATE_ENABLED"
	VarInterfaces   = "ONEAPP_VNF_LB_INTERFACES"
	VarRefresh      = "ONEAPP_VNF_LB_REFRESH_RATE"
	VarFwmarkOffset = "ONEAPP_VNF_LB_FWMARK_OFFSET"
	// VarLB is the prefix of the static LBs: <VarLB><x>_IP, _PORT,
	// _PROTOCOL, _METHOD, _SCHEDULER, _SERVER<y>_HOST ...
	VarLB = "ONEAPP_VNF_LB"
	// OneGateLB is the prefix of the dynamic attributes of backend VMs.
	OneGateLB = "ONEGATE_LB"
)

// Defaults of the user guide.
const (
	DefaultProtocol     = "UDP"
	DefaultMethod       = "NAT"
	DefaultScheduler    = "wlc"
	DefaultFwmarkOffset = 10000
)

// Methods and Schedulers are what keepalived (IPVS) accepts.
var (
	Methods    = []string{"NAT", "DR"}
	Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"}
	Protocols  = []string{"TCP", "UDP"}
)

// Family is LVS's set of LB variables: ports are optional (an LB without
// one balances every port).
var Family = lb.Family{
	Name:          "LVS",
	StaticPrefix:  VarLB,
	DynamicPrefix: OneGateLB,
	Interfaces:    VarInterfaces,
	AllPorts:      true,
	Options:       []string{"PROTOCOL", "METHOD", "SCHEDULER"},
	MaxWeight:     65535,
}

var vars = lb.Vars{Enabled: VarEnabled, OneGate: VarOneGate, Refresh: VarRefresh}

// Options are an LB's IPVS settings.
type Options struct {
	Protocol, Method, Scheduler string
	// Mark is the firewall mark of an all-ports LB (offset + index); 0
	// for an LB with a port.
	Mark uint32
}

// Spec is the parsed context.
type Spec struct {
	lb.Config
	Options      map[int]Options
	FwmarkOffset int
}

// FromContext parses the LVS variables (root: where the OneGate token file
// is looked for); every invalid value is reported, each naming its variable.
func FromContext(env onecontext.Env, root fsroot.Root) (Spec, error) {
	cfg, err := Family.FromContext(env, root, vars)
	if err != nil || !cfg.Enabled {
		return Spec{Config: cfg}, err
	}
	sp := Spec{Config: cfg, Options: map[int]Options{}}
	var errs []error
	maxIndex := 0
	for _, l := range cfg.LBs {
		maxIndex = max(maxIndex, l.Index)
	}
	sp.FwmarkOffset, err = env.Int(VarFwmarkOffset, DefaultFwmarkOffset, 1, math.MaxUint32-maxIndex)
	if err != nil {
		errs = append(errs, err)
	}
	type slot struct {
		addr  netip.Addr
		proto string
	}
	ports := map[slot]map[uint16]int{} // LBs by address and protocol, then port (0: all)
	for _, l := range cfg.LBs {
		o := Options{Protocol: DefaultProtocol, Method: DefaultMethod, Scheduler: DefaultScheduler}
		choose := func(suffix string, list []string, dst *string, upper bool) {
			v, ok := l.Opt(suffix)
			if !ok {
				return
			}
			s := strings.TrimSpace(v.Value)
			if upper {
				s = strings.ToUpper(s)
			} else {
				s = strings.ToLower(s)
			}
			for _, x := range list {
				if s == x {
					*dst = s
					return
				}
			}
			errs = append(errs, onecontext.Errorf(v.Var, v.Value, "use %s", strings.Join(list, ", ")))
		}
		choose("PROTOCOL", Protocols, &o.Protocol, true)
		choose("METHOD", Methods, &o.Method, true)
		choose("SCHEDULER", Schedulers, &o.Scheduler, false)
		ipVal := env.Get(l.AddrVar)
		if o.Method == "DR" && l.Port != 0 {
			// Direct routing forwards the packet unchanged: the real
			// server answers on the LB's own port.
			for _, sv := range l.Servers {
				if sv.Port != 0 && sv.Port != l.Port {
					errs = append(errs, onecontext.Errorf(sv.Source+"_PORT", env.Get(sv.Source+"_PORT"),
						"with METHOD DR a real server listens on the LB's port %d", l.Port))
				}
			}
		}
		if l.Port == 0 {
			o.Mark = uint32(sp.FwmarkOffset + l.Index)
			if l.Management {
				errs = append(errs, onecontext.Errorf(l.AddrVar, ipVal,
					"an LB without a port takes every port of %s, SSH included, and %s is a management NIC: that would lock you out (set %s%d_PORT)",
					l.Addr, l.NIC, VarLB, l.Index))
			}
		}
		s := slot{l.Addr, o.Protocol}
		if ports[s] == nil {
			ports[s] = map[uint16]int{}
		}
		for p, other := range ports[s] {
			if p == l.Port || p == 0 || l.Port == 0 {
				errs = append(errs, onecontext.Errorf(l.AddrVar, ipVal, "overlaps LB%d (%s %s): two LBs cannot balance the same %s port of an address",
					other, o.Protocol, endpoint(l.Addr, p), o.Protocol))
				break
			}
		}
		ports[s][l.Port] = l.Index
		sp.Options[l.Index] = o
	}
	if err := errors.Join(errs...); err != nil {
		return Spec{}, err
	}
	return sp, nil
}

func endpoint(a netip.Addr, port uint16) string {
	if port == 0 {
		return a.String() + ":*"
	}
	return netip.AddrPortFrom(a, port).String()
}

// options returns an LB's options (the defaults for an unknown index).
func (s Spec) options(i int) Options {
	if o, ok := s.Options[i]; ok {
		return o
	}
	return Options{Protocol: DefaultProtocol, Method: DefaultMethod, Scheduler: DefaultScheduler, Mark: uint32(s.FwmarkOffset + i)}
}
