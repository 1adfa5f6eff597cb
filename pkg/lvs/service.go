package lvs

import (
	"context"
	"fmt"
	"strings"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/keepalived"
	"github.com/hypercx/vrouter/pkg/lb"
	"github.com/hypercx/vrouter/pkg/netfilter"
	"github.com/hypercx/vrouter/pkg/openrc"
)

// LockFile is held by the running daemon: a second one fails at once.
// DaemonState is where it says which dynamic real servers it keeps (render
// and status use them while OneGate does not answer).
const (
	LockFile    = "/run/one-lvs.lock"
	DaemonState = "/run/one-lvs.state"
)

// Service is one-lvs.
type Service struct {
	// Services returns the service manager for a root (nil: OpenRC's
	// rc-service, scripts under <root>/etc/init.d).
	Services func(fsroot.Root) openrc.Services
	// Checker judges keepalived's configuration (nil: keepalived -t).
	Checker keepalived.Checker
	// Resolve turns server host names into addresses (nil: the system
	// resolver).
	Resolve Resolver
	// Client builds the OneGate client (nil: onegate.New).
	Client func(lb.Config) (lb.OneGate, error)
	// OnApplied, when set, sees every apply of the daemon (tests).
	OnApplied func(lb.Result, error)
}

// Info describes one-lvs.
func (Service) Info() cli.Info {
	return cli.Info{
		Name:    "one-lvs",
		Summary: "LVS: keepalived IPVS load balancer with static and OneGate (dynamic) real servers",
		Description: "Writes a keepalived virtual_server (IPVS) for every load balancer ONEAPP_VNF_LBx_IP[:PORT] (an address of " +
			"this router or a VIP; placeholders such as <ETH0_EP0> work) with its real servers ONEAPP_VNF_LBx_SERVERy_HOST[:PORT] " +
			"to " + ConfigFile + ", judged by keepalived -t with the rest of conf.d before it replaces the live file; keepalived " +
			"is reloaded (VRRP keeps its state) when it changed. An LB without a port balances every port of its address: its " +
			"traffic gets the firewall mark ONEAPP_VNF_LB_FWMARK_OFFSET+x (mangle chain " + ChainFwmark + ") and the virtual " +
			"server matches the mark; it is refused on a management NIC. With ONEAPP_VNF_LB_ONEGATE_ENABLED=YES, backend VMs " +
			"add themselves with ONEGATE_LBx_IP, _PORT, _SERVER_HOST, _SERVER_PORT, checked every REFRESH_RATE seconds. " +
			"Needs IPVS in the kernel (without it keepalived runs VRRP only and nothing is balanced). `start` runs the daemon " +
			"in the foreground (SIGHUP re-reads the context); `stop` empties lvs.conf, reloads keepalived and removes the marks.",
		Kind:    cli.Daemon,
		Scripts: []string{"one-lvs"},
		Vars: []cli.Var{
			{Name: VarEnabled, Default: "NO", Help: "enable LVS (YES/NO)"},
			{Name: VarOneGate, Default: "NO", Help: "add the dynamic real servers backend VMs publish in OneGate (YES/NO)"},
			{Name: VarInterfaces, Default: "all NICs", Help: "NICs whose own addresses LBs may use (VIPs are always allowed; management NICs never)"},
			{Name: VarRefresh, Default: "30", Help: "seconds between two looks at OneGate (1-86400)"},
			{Name: VarFwmarkOffset, Default: fmt.Sprint(DefaultFwmarkOffset), Help: "firewall mark of the all-ports LB x is this plus x"},
			{Name: lb.VarOneGateAPI, Default: "auto", Help: "where real servers are discovered: auto (vrouter when VROUTER_ID is set, else service when SERVICE_ID is), vrouter or service"},
			{Name: VarLB + "<x>_IP", Default: "", Help: "LB address: an IPv4 address or <ETHx_IPy>/<ETHx_VIPy>/<ETHx_EPy>; x unbounded"},
			{Name: VarLB + "<x>_PORT", Default: "every port", Help: "LB port"},
			{Name: VarLB + "<x>_PROTOCOL", Default: DefaultProtocol, Help: "TCP or UDP"},
			{Name: VarLB + "<x>_METHOD", Default: DefaultMethod, Help: "NAT or DR"},
			{Name: VarLB + "<x>_SCHEDULER", Default: DefaultScheduler, Help: "IPVS scheduler: " + strings.Join(Schedulers, ", ")},
			{Name: VarLB + "<x>_SERVER<y>_HOST", Default: "", Help: "real server address or host name (resolved to its IPv4 addresses)"},
			{Name: VarLB + "<x>_SERVER<y>_PORT", Default: "the LB's port", Help: "real server port"},
			{Name: VarLB + "<x>_SERVER<y>_WEIGHT", Default: "1", Help: "real server weight (0-65535)"},
			{Name: VarLB + "<x>_SERVER<y>_ULIMIT", Default: "0 (none)", Help: "upper connection limit"},
			{Name: VarLB + "<x>_SERVER<y>_LLIMIT", Default: "0 (none)", Help: "lower connection limit (the server takes connections again below it)"},
			{Name: OneGateLB + "<x>_IP, _PORT, _SERVER_HOST, _SERVER_PORT, _SERVER_WEIGHT, _SERVER_ULIMIT, _SERVER_LLIMIT, _ID", Default: "", Help: "in a backend VM's user template: the LB to join and the real server; _ID limits it to the router (VROUTER_ID) or service (SERVICE_ID) with that ID"},
		},
	}
}

func (s Service) lvs(rt *cli.Runtime) LVS {
	l := LVS{Root: rt.Root, Netfilter: rt.Netfilter, Files: keepalived.Files{Root: rt.Root, Checker: s.Checker}}
	if s.Services != nil {
		l.RC = s.Services(rt.Root)
	} else {
		l.RC = openrc.RC{Root: rt.Root}
	}
	if l.Files.Checker == nil {
		l.Files.Checker = keepalived.Exec{}
	}
	return l
}

func (s Service) resolver() Resolver {
	if s.Resolve != nil {
		return s.Resolve
	}
	return LookupIPv4
}

func spec(rt *cli.Runtime) (Spec, error) { return FromContext(rt.Env, rt.Root) }

// daemon is one-lvs's daemon without its Apply (Start adds it).
var daemon = lb.Daemon[Spec]{
	Name: "one-lvs", LockFile: LockFile, StateFile: DaemonState, Family: Family,
	EnabledVar: VarEnabled, Idle: "LVS is disabled: no virtual servers until a context enables it",
	Parse:  spec,
	Config: func(sp Spec) lb.Config { return sp.Config },
	Warn:   warn,
}

// warn logs what the user should know about the context and the machine.
func warn(rt *cli.Runtime, sp Spec) {
	if len(sp.SkippedNICs) > 0 {
		rt.Log.Warn("management NICs never serve an LB", "var", VarInterfaces, "skipped", strings.Join(sp.SkippedNICs, ","))
	}
	if len(sp.LBs) == 0 {
		rt.Log.Warn("no load balancer is defined", "vars", VarLB+"<x>_IP")
	}
	if !rt.Root.Exists(IPVSFile) {
		rt.Log.Warn("this kernel has no IPVS: keepalived runs VRRP only and the virtual servers balance nothing", "file", IPVSFile)
	}
}

// desired resolves the host names of the LBs and renders them.
func (s Service) desired(ctx context.Context, rt *cli.Runtime, sp Spec, lbs []lb.LB) (Desired, []string) {
	lbs, problems := ResolveHosts(ctx, s.resolver(), lbs)
	return Render(sp, lbs), problems
}

// Configure validates the context. A disabled LVS has nothing running: its
// virtual servers and marks are removed (the original left lvs.conf
// behind); an enabled one is applied only by start (one-failover starts it
// on the master).
func (s Service) Configure(ctx context.Context, rt *cli.Runtime) error {
	sp, err := spec(rt)
	if err != nil {
		return err
	}
	if !sp.Enabled {
		rt.Log.Info("LVS is disabled: no virtual servers", "var", VarEnabled)
		return s.lvs(rt).Stop(ctx)
	}
	warn(rt, sp)
	rt.Log.Info("configured", "lbs", lb.Describe(sp.LBs))
	return nil
}

// Start runs the daemon: it applies the LBs with the dynamic real servers,
// then looks at OneGate (and re-resolves host names) every refresh
// interval, until SIGTERM; SIGHUP re-reads the context. With LVS disabled it
// keeps no virtual server and waits for a context that enables it.
func (s Service) Start(ctx context.Context, rt *cli.Runtime) error {
	l := s.lvs(rt)
	problems := map[string]bool{}
	dm := daemon
	dm.Client, dm.OnApplied = s.Client, s.OnApplied
	dm.Apply = func(ctx context.Context, sp Spec, res lb.Result) error {
		if !sp.Enabled {
			return l.Stop(ctx)
		}
		d, probs := s.desired(ctx, rt, sp, res.LBs)
		now := map[string]bool{}
		for _, p := range probs {
			now[p] = true
			if !problems[p] {
				rt.Log.Warn("real server left out", "reason", p)
			}
		}
		problems = now
		r, err := l.Apply(ctx, d)
		if err == nil && (r.FileChanged || r.Reloaded || r.RulesChanged) {
			rt.Log.Info("applied", "lbs", lb.Describe(res.LBs), "dynamic", res.Dynamic, "stale", res.Stale,
				"file_changed", r.FileChanged, "marks_changed", r.RulesChanged, "keepalived_reloaded", r.Reloaded)
			if !r.Reloaded && r.KeepalivedState != openrc.Started {
				rt.Log.Warn("keepalived is not running: it reads the virtual servers when it starts", "keepalived", string(r.KeepalivedState))
			}
		}
		return err
	}
	return dm.Serve(ctx, rt)
}

// Stop empties lvs.conf, reloads keepalived and removes the marks; it needs
// no valid context.
func (s Service) Stop(ctx context.Context, rt *cli.Runtime) error {
	if err := s.lvs(rt).Stop(ctx); err != nil {
		return err
	}
	rt.Log.Info("stopped: no virtual servers")
	return nil
}

// Render prints lvs.conf and the mangle table payload of the marks, with
// the dynamic real servers OneGate reports now.
func (s Service) Render(ctx context.Context, rt *cli.Runtime) ([]cli.Artefact, error) {
	sp, err := spec(rt)
	if err != nil {
		return nil, err
	}
	if !sp.Enabled {
		rt.Log.Info("LVS is disabled: nothing to apply", "var", VarEnabled)
		return nil, nil
	}
	res := daemon.Now(ctx, rt, sp.Config)
	d, probs := s.desired(ctx, rt, sp, res.LBs)
	for _, p := range probs {
		rt.Log.Warn("real server left out", "reason", p)
	}
	arts := []cli.Artefact{{Target: ConfigFile, Body: d.Config}}
	if d.Marks {
		if err := d.Rules.Validate(); err != nil {
			return nil, err
		}
		arts = append(arts, cli.Artefact{Target: "iptables:mangle", Body: netfilter.Render(d.Rules)["mangle"]})
	}
	return arts, nil
}

// Status compares lvs.conf, keepalived and the marks with the context (and
// OneGate).
func (s Service) Status(ctx context.Context, rt *cli.Runtime) (cli.Report, error) {
	sp, err := spec(rt)
	if err != nil {
		return cli.Report{}, err
	}
	l := s.lvs(rt)
	var d Desired
	var res lb.Result
	if sp.Enabled {
		res = daemon.Now(ctx, rt, sp.Config)
		d, _ = s.desired(ctx, rt, sp, res.LBs)
	} else {
		d = Render(Spec{}, nil)
	}
	live, err := l.Inspect(ctx, d)
	if err != nil {
		return cli.Report{}, err
	}
	rep := cli.Report{Enabled: sp.Enabled, Applied: sp.Enabled && live.Applied && len(live.Rules) == 0}
	rep.Details = append(rep.Details, "keepalived: "+string(live.Keepalived), fmt.Sprintf("IPVS in the kernel: %t", live.IPVS))
	if !sp.Enabled {
		if live, _ := rt.Root.ReadFile(ConfigFile); len(live) > 0 && !strings.Contains(string(live), "# No load balancer.") {
			rep.Drift = append(rep.Drift, "LVS is disabled but "+ConfigFile+" holds virtual servers")
		}
		rep.Drift = append(rep.Drift, live.Rules...)
		return rep, nil
	}
	if !live.IPVS {
		rep.Drift = append(rep.Drift, "this kernel has no IPVS: nothing is balanced (keepalived runs VRRP only)")
	}
	if !live.File {
		rep.Drift = append(rep.Drift, ConfigFile+" differs from the context and OneGate")
	}
	switch {
	case live.Keepalived != openrc.Started:
		rep.Drift = append(rep.Drift, "keepalived is "+string(live.Keepalived))
	case !live.Applied:
		rep.Drift = append(rep.Drift, "keepalived has not read the current "+ConfigFile)
	}
	rep.Drift = append(rep.Drift, live.Rules...)
	rep.Details = append(rep.Details, "real servers: "+res.Source(sp.Config))
	rep.Details = append(rep.Details, res.Details(func(l lb.LB) string {
		o := sp.options(l.Index)
		return o.Protocol + " " + l.Endpoint() + " " + o.Method + " " + o.Scheduler
	})...)
	return rep, nil
}
