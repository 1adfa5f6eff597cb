package router4

import (
	"context"
	"strings"

	"github.com/hypercx/vrouter/pkg/cli"
)

// Service is one-router4.
type Service struct{}

// Info describes one-router4.
func (Service) Info() cli.Info {
	return cli.Info{
		Name:    "one-router4",
		Summary: "Router4: IPv4 forwarding between the router's NICs",
		Description: "Turns IPv4 forwarding on for the NICs in ONEAPP_VNF_ROUTER4_INTERFACES (default: all), off for the other NICs " +
			"of the context, and leaves management NICs (ETHx_VROUTER_MANAGEMENT=YES) alone. The values are written through " +
			"/proc/sys and persisted in " + SysctlFile + ". Oneshot; stop turns forwarding off again.",
		Kind:    cli.Oneshot,
		Scripts: []string{"one-router4"},
		Vars: []cli.Var{
			{Name: VarEnabled, Default: "YES", Help: "enable forwarding (YES/NO)"},
			{Name: VarInterfaces, Default: "all NICs", Help: "NICs to forward from (e.g. \"eth0 eth1\", \"!eth2\")"},
		},
	}
}

// Configure validates the context and writes the persisted file.
func (Service) Configure(ctx context.Context, rt *cli.Runtime) error {
	spec, err := FromContext(rt.Env)
	if err != nil {
		return err
	}
	_, err = rt.Root.WriteFile(SysctlFile, Render(spec).File, 0o644)
	return err
}

// Start applies forwarding; when disabled it converges to forwarding off.
func (Service) Start(ctx context.Context, rt *cli.Runtime) error {
	spec, err := FromContext(rt.Env)
	if err != nil {
		return err
	}
	res, err := Apply(ctx, rt.Sysctl, rt.Root, Render(spec), rt.Log)
	if err != nil {
		return err
	}
	if len(res.Missing) > 0 {
		rt.Log.Warn("interfaces not present, skipped", "keys", strings.Join(res.Missing, ","))
	}
	rt.Log.Info("applied", "enabled", spec.Enabled, "forwarding", strings.Join(spec.Forward, ","), "off", strings.Join(spec.Off, ","), "writes", res.Writes)
	return nil
}

// Stop turns forwarding off on every NIC but the management ones.
func (Service) Stop(ctx context.Context, rt *cli.Runtime) error {
	res, err := Apply(ctx, rt.Sysctl, rt.Root, Render(Stopped(rt.Env)), rt.Log)
	if err == nil {
		rt.Log.Info("stopped", "writes", res.Writes)
	}
	return err
}

// Render prints the sysctl.d file and the live settings.
func (Service) Render(ctx context.Context, rt *cli.Runtime) ([]cli.Artefact, error) {
	spec, err := FromContext(rt.Env)
	if err != nil {
		return nil, err
	}
	d := Render(spec)
	return []cli.Artefact{{Target: SysctlFile, Body: d.File}, {Target: "sysctl", Body: d.File}}, nil
}

// Status compares the live settings with the context.
func (Service) Status(ctx context.Context, rt *cli.Runtime) (cli.Report, error) {
	spec, err := FromContext(rt.Env)
	if err != nil {
		return cli.Report{}, err
	}
	d := Render(spec)
	drift, missing, err := Diff(rt.Sysctl, d)
	if err != nil {
		return cli.Report{}, err
	}
	rep := cli.Report{Enabled: spec.Enabled, Drift: drift}
	for _, n := range spec.Forward {
		if v, err := rt.Sysctl.Get(ForwardingKey(n)); err == nil && v == "1" {
			rep.Applied = true
		}
	}
	if file, err := rt.Root.ReadFile(SysctlFile); err != nil || string(file) != string(d.File) {
		rep.Drift = append(rep.Drift, SysctlFile+" differs from the context")
	}
	for _, m := range missing {
		rep.Details = append(rep.Details, "not present in the kernel: "+m)
	}
	rep.Details = append(rep.Details, "forwarding: "+cli.List(spec.Forward), "off: "+cli.List(spec.Off), "untouched (management): "+cli.List(spec.Management))
	return rep, nil
}
