package nat4

import (
	"context"
	"fmt"
	"strings"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/conntrackd"
	"github.com/hypercx/vrouter/pkg/netfilter"
)

// Service is one-nat4.
type Service struct{}

// Info describes one-nat4.
func (Service) Info() cli.Info {
	return cli.Info{
		Name:    "one-nat4",
		Summary: "NAT4: masquerade and static port forwards",
		Description: "Masquerades traffic leaving the NICs of ONEAPP_VNF_NAT4_INTERFACES_OUT (chain NAT4-MASQ) and forwards " +
			"ports with ONEAPP_VNF_NAT4_PORT_FWDn = [old_dest:]old_port:new_dest[:new_port] as TCP and UDP DNAT (chain NAT4-DNAT). " +
			"A forward without old_dest applies to traffic addressed to the router itself; VMs on the target's network reach " +
			"forwarded ports too (hairpin). Everything is applied in one iptables-restore transaction; an unchanged context " +
			"changes nothing. Oneshot; stop removes every NAT4 rule, chain and jump.",
		Kind:    cli.Oneshot,
		Scripts: []string{"one-nat4"},
		Vars: []cli.Var{
			{Name: VarEnabled, Default: "NO", Help: "enable NAT4 (YES/NO)"},
			{Name: VarInterfacesOut, Default: "no NICs", Help: "NICs to masquerade out of (e.g. eth0)"},
			{Name: VarPortFwd + "<n>", Default: "", Help: "port forward [old_dest:]old_port:new_dest[:new_port]; old_dest may be <ETHx_IPy>, <ETHx_VIPy> or <ETHx_EPy>; n unbounded"},
			{Name: conntrackd.VarEnabled, Default: "NO", Help: "YES (connection sync between failover routers): translate to the outgoing NIC's VIP instead of masquerading, so connections survive a failover"},
		},
	}
}

// Configure validates the context; NAT4 has no static files.
func (Service) Configure(ctx context.Context, rt *cli.Runtime) error {
	_, err := FromContext(rt.Env)
	return err
}

// Start applies the ruleset (or removes it when NAT4 is disabled).
func (Service) Start(ctx context.Context, rt *cli.Runtime) error {
	spec, err := FromContext(rt.Env)
	if err != nil {
		return err
	}
	if !spec.Enabled {
		rt.Log.Info("disabled; removing any NAT4 rules", "var", VarEnabled)
		return rt.Netfilter.Teardown(ctx, Skeleton())
	}
	if len(spec.Skipped) > 0 {
		rt.Log.Warn("management NICs are never masqueraded", "var", VarInterfacesOut, "skipped", strings.Join(spec.Skipped, ","))
	}
	if len(spec.Out) == 0 {
		rt.Log.Warn("no outgoing NIC: no masquerade", "var", VarInterfacesOut)
	}
	res, err := rt.Netfilter.Apply(ctx, Render(spec))
	if err != nil {
		return err
	}
	rt.Log.Info("NAT4 applied", "masquerade", strings.Join(spec.Out, ","), "forwards", len(spec.Forwards), "changed", res.Changed)
	return nil
}

// Stop removes every NAT4 chain and jump; it needs no valid context.
func (Service) Stop(ctx context.Context, rt *cli.Runtime) error {
	return rt.Netfilter.Teardown(ctx, Skeleton())
}

// Render prints the nat table payload.
func (Service) Render(ctx context.Context, rt *cli.Runtime) ([]cli.Artefact, error) {
	spec, err := FromContext(rt.Env)
	if err != nil {
		return nil, err
	}
	if !spec.Enabled {
		rt.Log.Info("NAT4 is disabled: nothing to apply", "var", VarEnabled)
		return nil, nil
	}
	rs := Render(spec)
	if err := rs.Validate(); err != nil {
		return nil, err
	}
	return []cli.Artefact{{Target: "iptables:nat", Body: netfilter.Render(rs)["nat"]}}, nil
}

// Status compares the live nat table with the context.
func (Service) Status(ctx context.Context, rt *cli.Runtime) (cli.Report, error) {
	spec, err := FromContext(rt.Env)
	if err != nil {
		return cli.Report{}, err
	}
	present, err := rt.Netfilter.Present(ctx, Skeleton())
	if err != nil {
		return cli.Report{}, err
	}
	rep := cli.Report{Enabled: spec.Enabled, Applied: present}
	if !spec.Enabled {
		if present {
			rep.Drift = append(rep.Drift, "NAT4 is disabled but its chains are present")
		}
		return rep, nil
	}
	drift, err := rt.Netfilter.Diff(ctx, Render(spec))
	if err != nil {
		return cli.Report{}, err
	}
	rep.Drift = drift
	rep.Details = append(rep.Details, fmt.Sprintf("masquerade out of: %s; port forwards: %d", cli.List(spec.Out), len(spec.Forwards)))
	return rep, nil
}
