// Package failover is one-failover: it renders keepalived's VRRP
// configuration (and conntrackd's) from the context, keeps keepalived and
// conntrackd running, and, as a daemon, starts the enabled data-plane
// services when this router is the VRRP master and stops them when it is
// not.
//
// The daemon never waits for an edge: it learns the current state from the
// VIPs present on the NICs and keepalived's liveness when it starts,
// whenever the FIFO is reopened and whenever the FIFO and the NICs disagree
// for a few seconds. keepalived's notify FIFO only makes it fast. Decisions
// are a pure function (Decide) of the state and one event; the loop only
// gathers events and carries out transitions through the service manager.
package failover

import (
	"errors"

	"github.com/hypercx/vrouter/pkg/conntrackd"
	"github.com/hypercx/vrouter/pkg/keepalived"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

// TableEntry is a data-plane service one-failover starts on the master.
type TableEntry struct {
	Name    string // OpenRC service
	Var     string // the variable that enables it
	Default bool
}

// Table is the failover service table, in the order services are started.
// Counterpart daemons (haproxy, unbound) are started and stopped by their
// one-* service, not from here.
func Table() []TableEntry {
	return []TableEntry{
		{"one-router4", "ONEAPP_VNF_ROUTER4_ENABLED", true},
		{"one-nat4", "ONEAPP_VNF_NAT4_ENABLED", false},
		{"one-sdnat4", "ONEAPP_VNF_SDNAT4_ENABLED", false},
		{"one-lvs", "ONEAPP_VNF_LB_ENABLED", false},
		{"one-haproxy", "ONEAPP_VNF_HAPROXY_ENABLED", false},
		{"one-dns", "ONEAPP_VNF_DNS_ENABLED", false},
		{"one-dhcp4v2", "ONEAPP_VNF_DHCP4_ENABLED", false},
		{"one-wg", "ONEAPP_VNF_WG_ENABLED", false},
	}
}

// DataService is a table service with its value in the context.
type DataService struct {
	TableEntry
	Enabled bool
}

// Spec is everything one-failover reads from the context.
type Spec struct {
	VRRP       keepalived.Config
	Conntrackd conntrackd.Spec
	Services   []DataService
}

// Enabled lists the enabled services in table order.
func (s Spec) Enabled() []string {
	var out []string
	for _, d := range s.Services {
		if d.Enabled {
			out = append(out, d.Name)
		}
	}
	return out
}

// FromContext parses the context; every invalid value is reported, each
// naming its variable.
func FromContext(env onecontext.Env) (Spec, error) {
	var errs []error
	var s Spec
	var err error
	if s.VRRP, err = keepalived.FromContext(env); err != nil {
		errs = append(errs, err)
	} else if s.Conntrackd, err = conntrackd.FromContext(env, s.VRRP); err != nil {
		errs = append(errs, err)
	}
	for _, e := range Table() {
		on, err := env.Bool(e.Var, e.Default)
		if err != nil {
			errs = append(errs, err)
		}
		s.Services = append(s.Services, DataService{TableEntry: e, Enabled: on})
	}
	if err := errors.Join(errs...); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// Warnings collects what the user should know about the configuration.
func (s Spec) Warnings() []string {
	return append(append([]string{}, s.VRRP.Warnings...), s.Conntrackd.Warnings...)
}
