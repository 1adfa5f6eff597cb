package haproxy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/lb"
	"github.com/hypercx/vrouter/pkg/openrc"
)

// LockFile is held by the running daemon: a second one fails at once, and
// configure knows servers.cfg is the daemon's. DaemonState is where it says
// which dynamic backends it keeps (render and status use them while OneGate
// does not answer).
const (
	LockFile    = "/run/one-haproxy.lock"
	DaemonState = "/run/one-haproxy.state"
)

// Service is one-haproxy.
type Service struct {
	// Services returns the service manager for a root (nil: OpenRC's
	// rc-service, scripts under <root>/etc/init.d).
	Services func(fsroot.Root) openrc.Services
	// Check judges candidate files (nil: haproxy -c).
	Check Checker
	// Admin talks to haproxy (nil: its admin socket under the root).
	Admin Admin
	// Client builds the OneGate client (nil: onegate.New).
	Client func(lb.Config) (lb.OneGate, error)
	// OnApplied, when set, sees every apply of the daemon (tests).
	OnApplied func(lb.Result, error)
}

// Info describes one-haproxy.
func (Service) Info() cli.Info {
	return cli.Info{
		Name:    "one-haproxy",
		Summary: "HAProxy: TCP load balancer with static and OneGate (dynamic) backends",
		Description: "Runs haproxy (its own OpenRC service) with one TCP frontend and backend per load balancer " +
			"ONEAPP_VNF_HAPROXY_LBx_IP:PORT (an address of this router or a VIP; placeholders such as <ETH0_EP0> work) and its " +
			"servers ONEAPP_VNF_HAPROXY_LBx_SERVERy_HOST:PORT. With ONEAPP_VNF_HAPROXY_ONEGATE_ENABLED=YES, backend VMs add " +
			"themselves with ONEGATE_HAPROXY_LBx_IP, _PORT, _SERVER_HOST, _SERVER_PORT in their user template (virtual router: " +
			"VMs with BACKEND=YES on the router's networks; OneFlow: the service's VMs), checked every REFRESH_RATE seconds; " +
			"a backend VM can only join an LB defined here with the same index, address and port. " + MainFile + " and " +
			ServersFile + " are judged by `haproxy -c` before they replace the live files; haproxy is reloaded gracefully, " +
			"keeping its servers' health, only when they changed. `configure` writes haproxy.cfg and, unless the daemon runs, an empty " +
			"servers.cfg (haproxy always starts); `start` runs the daemon in the foreground (SIGHUP re-reads the context); `stop` " +
			"stops haproxy and empties servers.cfg. A haproxy stopped by hand is left stopped (OpenRC then reports one-haproxy crashed).",
		Kind:    cli.Daemon,
		Scripts: []string{"one-haproxy", HAProxyService},
		Vars: []cli.Var{
			{Name: VarEnabled, Default: "NO", Help: "enable HAProxy (YES/NO)"},
			{Name: VarOneGate, Default: "NO", Help: "add the dynamic backends backend VMs publish in OneGate (YES/NO)"},
			{Name: VarInterfaces, Default: "all NICs", Help: "NICs whose own addresses LBs may use (VIPs are always allowed; management NICs never)"},
			{Name: VarRefresh, Default: "30", Help: "seconds between two looks at OneGate (1-86400)"},
			{Name: lb.VarOneGateAPI, Default: "auto", Help: "where backends are discovered: auto (vrouter when VROUTER_ID is set, else service when SERVICE_ID is), vrouter or service"},
			{Name: VarLB + "<x>_IP", Default: "", Help: "LB address: an IPv4 address or <ETHx_IPy>/<ETHx_VIPy>/<ETHx_EPy>; x unbounded"},
			{Name: VarLB + "<x>_PORT", Default: "", Help: "LB port (mandatory)"},
			{Name: VarLB + "<x>_BALANCE", Default: DefaultBalance, Help: "algorithm: " + strings.Join(Balances, ", ")},
			{Name: VarLB + "<x>_CHECK_INTERVAL", Default: fmt.Sprint(int(DefaultCheckInterval / time.Second)), Help: "seconds between two health checks of each server (0.1-3600)"},
			{Name: VarLB + "<x>_SERVER<y>_HOST", Default: "", Help: "backend address or host name"},
			{Name: VarLB + "<x>_SERVER<y>_PORT", Default: "", Help: "backend port (mandatory)"},
			{Name: VarLB + "<x>_SERVER<y>_WEIGHT", Default: "1", Help: "backend weight (0-256)"},
			{Name: VarLB + "<x>_SERVER<y>_ULIMIT", Default: "0 (none)", Help: "most connections at once to the backend (haproxy maxconn)"},
			{Name: OneGateLB + "<x>_IP, _PORT, _SERVER_HOST, _SERVER_PORT, _SERVER_WEIGHT, _SERVER_ULIMIT, _ID", Default: "", Help: "in a backend VM's user template: the LB to join and the backend; _ID limits it to the router (VROUTER_ID) or service (SERVICE_ID) with that ID"},
		},
	}
}

func (s Service) haproxy(rt *cli.Runtime) HAProxy {
	h := HAProxy{Root: rt.Root, Check: s.Check, Admin: s.Admin}
	if s.Services != nil {
		h.RC = s.Services(rt.Root)
	} else {
		h.RC = openrc.RC{Root: rt.Root}
	}
	if h.Check == nil {
		h.Check = CheckExec
	}
	if h.Admin == nil {
		h.Admin = Socket{Path: rt.Root.Path(AdminSocket)}
		h.Master = Socket{Path: rt.Root.Path(MasterSocket)}
	}
	return h
}

func spec(rt *cli.Runtime) (Spec, error) { return FromContext(rt.Env, rt.Root) }

// daemon is one-haproxy's daemon without its Apply (Start adds it).
var daemon = lb.Daemon[Spec]{
	Name: "one-haproxy", LockFile: LockFile, StateFile: DaemonState, Family: Family,
	EnabledVar: VarEnabled, Idle: "HAProxy is disabled: haproxy stays stopped until a context enables it",
	Parse:  spec,
	Config: func(sp Spec) lb.Config { return sp.Config },
	Warn:   warn,
}

// warn logs what the context asks for that has no effect.
func warn(rt *cli.Runtime, sp Spec) {
	if len(sp.Ignored) > 0 {
		rt.Log.Warn("LVS options have no effect on HAProxy", "vars", strings.Join(sp.Ignored, ","))
	}
	if len(sp.LLimits) > 0 {
		rt.Log.Warn("HAProxy has no lower connection limit; ignored", "vars", strings.Join(sp.LLimits, ","))
	}
	if len(sp.SkippedNICs) > 0 {
		rt.Log.Warn("management NICs never serve an LB", "var", VarInterfaces, "skipped", strings.Join(sp.SkippedNICs, ","))
	}
	if len(sp.LBs) == 0 {
		rt.Log.Warn("no load balancer is defined", "vars", VarLB+"<x>_IP,_PORT")
	}
}

// Configure validates the context and writes haproxy.cfg, and an empty
// servers.cfg unless the daemon runs (it owns servers.cfg then), so haproxy
// can always start, whatever addresses went away; haproxy is not touched.
func (s Service) Configure(ctx context.Context, rt *cli.Runtime) error {
	sp, err := spec(rt)
	if err != nil {
		return err
	}
	if !sp.Enabled {
		rt.Log.Info("HAProxy is disabled: nothing to configure", "var", VarEnabled)
		return nil
	}
	warn(rt, sp)
	h := s.haproxy(rt)
	d := Desired{Main: MainConfig(), Servers: EmptyServers()}
	unlock, err := lb.Lock(rt.Root, LockFile, daemon.Name)
	if err != nil {
		// The daemon runs: keep its servers.cfg.
		if d.Servers, err = rt.Root.ReadFile(ServersFile); err != nil {
			d.Servers = EmptyServers()
		}
	} else {
		defer unlock()
	}
	changed, err := h.WriteConfig(ctx, d)
	if err != nil {
		return err
	}
	rt.Log.Info("configured", "files", MainFile+","+ServersFile, "changed", changed)
	return nil
}

// Start runs the daemon: it applies the LBs with the dynamic backends, then
// looks at OneGate every refresh interval, until SIGTERM; SIGHUP re-reads the
// context (a bad one keeps the last good one). With HAProxy disabled it
// keeps haproxy stopped and waits for a context that enables it.
func (s Service) Start(ctx context.Context, rt *cli.Runtime) error {
	h := s.haproxy(rt)
	d := daemon
	d.Client, d.OnApplied = s.Client, s.OnApplied
	d.Apply = func(ctx context.Context, sp Spec, res lb.Result) error {
		if !sp.Enabled {
			return h.Stop(ctx)
		}
		r, err := h.Apply(ctx, Render(sp, res.LBs))
		if err == nil && (r.FileChanged || r.Action != ActionNone) {
			rt.Log.Info("applied", "lbs", lb.Describe(res.LBs), "dynamic", res.Dynamic, "stale", res.Stale,
				"files_changed", r.FileChanged, "haproxy", string(r.Action))
		}
		return err
	}
	return d.Serve(ctx, rt)
}

// Stop stops haproxy and empties servers.cfg; it needs no valid context.
// Under OpenRC `rc-service one-haproxy stop` stops the daemon first.
func (s Service) Stop(ctx context.Context, rt *cli.Runtime) error {
	if err := s.haproxy(rt).Stop(ctx); err != nil {
		return err
	}
	rt.Log.Info("stopped haproxy")
	return nil
}

// Render prints haproxy.cfg and servers.cfg with the dynamic backends
// OneGate reports now (the static ones only when it is off or unreachable).
func (s Service) Render(ctx context.Context, rt *cli.Runtime) ([]cli.Artefact, error) {
	sp, err := spec(rt)
	if err != nil {
		return nil, err
	}
	if !sp.Enabled {
		rt.Log.Info("HAProxy is disabled: nothing to apply", "var", VarEnabled)
		return nil, nil
	}
	res := daemon.Now(ctx, rt, sp.Config)
	d := Render(sp, res.LBs)
	return []cli.Artefact{{Target: MainFile, Body: d.Main}, {Target: ServersFile, Body: d.Servers}}, nil
}

// Status compares haproxy and its files with the context (and OneGate).
func (s Service) Status(ctx context.Context, rt *cli.Runtime) (cli.Report, error) {
	sp, err := spec(rt)
	if err != nil {
		return cli.Report{}, err
	}
	h := s.haproxy(rt)
	if !sp.Enabled {
		st, err := h.RC.Status(ctx, HAProxyService)
		if err != nil {
			return cli.Report{}, err
		}
		rep := cli.Report{Details: []string{"haproxy: " + string(st)}}
		if st == openrc.Started {
			rep.Drift = append(rep.Drift, "HAProxy is disabled but haproxy runs")
		}
		return rep, nil
	}
	res := daemon.Now(ctx, rt, sp.Config)
	d := Render(sp, res.LBs)
	live, err := h.Inspect(ctx, d)
	if err != nil {
		return cli.Report{}, err
	}
	rep := cli.Report{Enabled: true, Applied: live.Running}
	rep.Details = append(rep.Details, "haproxy: "+string(live.State))
	switch {
	case live.State == openrc.Missing:
		rep.Drift = append(rep.Drift, "haproxy's OpenRC script is not installed (one-haproxy install)")
	case live.State != openrc.Started:
		rep.Drift = append(rep.Drift, "haproxy is "+string(live.State))
	case !live.Answers:
		rep.Drift = append(rep.Drift, "haproxy does not answer on "+AdminSocket)
	}
	if !live.Files {
		rep.Drift = append(rep.Drift, MainFile+" or "+ServersFile+" differs from the context and OneGate")
	}
	if live.State == openrc.Started && !live.Running {
		rep.Drift = append(rep.Drift, "haproxy runs an older configuration (the daemon applies it within "+sp.Refresh.String()+")")
	}
	rep.Details = append(rep.Details, "backends: "+res.Source(sp.Config))
	rep.Details = append(rep.Details, res.Details(lb.LB.Endpoint)...)
	for _, sv := range live.Servers {
		rep.Details = append(rep.Details, "server "+sv)
	}
	return rep, nil
}
