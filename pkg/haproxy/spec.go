// Package haproxy is one-haproxy: a TCP frontend and backend in HAProxy
// for every load balancer of the context (ONEAPP_VNF_HAPROXY_LBx_*), with the
// dynamic backends OneGate reports (ONEGATE_HAPROXY_LBx_*), kept fresh by a
// refresh loop. The configuration (haproxy.cfg: global and defaults;
// servers.cfg: the LBs) is judged by `haproxy -c` before it replaces the live
// files, and haproxy, an OpenRC service of its own, is reloaded gracefully
// only when the bytes changed, with its servers' health carried over.
package haproxy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/lb"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

// Context variables.
const (
	VarEnabled    = "ONEAPP_VNF_HAPROXY_ENABLED"
	VarOneGate    = "ONEAPP_VNF_HAPROXY_ONEGATE_ENABLED"
	VarInterfaces = "ONEAPP_VNF_HAPROXY_INTERFACES"
	VarRefresh    = "ONEAPP_VNF_HAPROXY_REFRESH_RATE"
	// VarLB is the prefix of the static LBs: <VarLB><x>_IP, _PORT,
	// _BALANCE, _CHECK_INTERVAL, _SERVER<y>_HOST ...
	VarLB = "ONEAPP_VNF_HAPROXY_LB"
	// OneGateLB is the prefix of the dynamic attributes of backend VMs.
	OneGateLB = "ONEGATE_HAPROXY_LB"
)

// Defaults of the new per-LB options, those of the original (which wrote
// `balance roundrobin` and `check` with haproxy's default interval).
const (
	DefaultBalance       = "roundrobin"
	DefaultCheckInterval = 2 * time.Second
)

// Balances are the algorithms ONEAPP_VNF_HAPROXY_LBx_BALANCE accepts.
var Balances = []string{"roundrobin", "leastconn", "source"}

// Family is HAProxy's set of LB variables. LLIMIT has no HAProxy
// equivalent (IPVS re-enables a server below it): it is parsed and ignored.
var Family = lb.Family{
	Name:          "HAProxy",
	StaticPrefix:  VarLB,
	DynamicPrefix: OneGateLB,
	Interfaces:    VarInterfaces,
	Options:       []string{"BALANCE", "CHECK_INTERVAL"},
	// Parsed by the original and never rendered; LVS options.
	Ignored:   []string{"PROTOCOL", "METHOD", "SCHEDULER"},
	MaxWeight: 256,
}

// vars are the service-wide variables.
var vars = lb.Vars{Enabled: VarEnabled, OneGate: VarOneGate, Refresh: VarRefresh}

// Options are an LB's HAProxy settings.
type Options struct {
	Balance       string
	CheckInterval time.Duration
}

// Spec is the parsed context.
type Spec struct {
	lb.Config
	// Options by LB index.
	Options map[int]Options
	// LLimits are the LLIMIT variables set, which HAProxy ignores.
	LLimits []string
}

// FromContext parses the HAProxy variables (root: where the OneGate token
// file is looked for); every invalid value is reported, each naming its
// variable.
func FromContext(env onecontext.Env, root fsroot.Root) (Spec, error) {
	cfg, err := Family.FromContext(env, root, vars)
	if err != nil || !cfg.Enabled {
		return Spec{Config: cfg}, err
	}
	sp := Spec{Config: cfg, Options: map[int]Options{}}
	var errs []error
	seen := map[netip.AddrPort]int{}
	for _, l := range cfg.LBs {
		o := Options{Balance: DefaultBalance, CheckInterval: DefaultCheckInterval}
		if b, ok := l.Opt("BALANCE"); ok {
			v := strings.ToLower(strings.TrimSpace(b.Value))
			if !contains(Balances, v) {
				errs = append(errs, onecontext.Errorf(b.Var, b.Value, "use %s", strings.Join(Balances, ", ")))
			}
			o.Balance = v
		}
		if c, ok := l.Opt("CHECK_INTERVAL"); ok {
			d, err := env.Seconds(c.Var, DefaultCheckInterval, 100*time.Millisecond, time.Hour)
			if err != nil {
				errs = append(errs, err)
			}
			o.CheckInterval = d.Round(time.Millisecond)
		}
		sp.Options[l.Index] = o
		ap := netip.AddrPortFrom(l.Addr, l.Port)
		if other, dup := seen[ap]; dup {
			errs = append(errs, onecontext.Errorf(l.AddrVar, env.Get(l.AddrVar), "LB%d listens on %s too: two LBs cannot share an address and port", other, ap))
		}
		seen[ap] = l.Index
		for _, s := range l.Servers {
			if s.LLimit > 0 {
				sp.LLimits = append(sp.LLimits, s.Source+"_LLIMIT")
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Spec{}, err
	}
	return sp, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// options returns an LB's options (defaults for an index without any).
func (s Spec) options(i int) Options {
	if o, ok := s.Options[i]; ok {
		return o
	}
	return Options{Balance: DefaultBalance, CheckInterval: DefaultCheckInterval}
}

// describeInterval prints a check interval as haproxy reads it.
func describeInterval(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}
