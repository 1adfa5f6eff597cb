package failover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/conntrackd"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/keepalived"
	"github.com/hypercx/vrouter/pkg/netfilter"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/onegate"
	"github.com/hypercx/vrouter/pkg/openrc"
)

// Name is the OpenRC service of the daemon.
const Name = "one-failover"

// Links brings NICs up (netlink on the router).
type Links interface {
	Up(nic string) error
}

// NetlinkLinks is the real Links.
type NetlinkLinks struct{}

// Up sets nic up.
func (NetlinkLinks) Up(nic string) error {
	l, err := netlink.LinkByName(nic)
	if err != nil {
		return fmt.Errorf("looking up %s: %w", nic, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("setting %s up: %w", nic, err)
	}
	return nil
}

// Service is one-failover. Its fields are seams; nil means the real thing.
type Service struct {
	Services func(fsroot.Root) openrc.Services
	Checker  keepalived.Checker
	Links    Links
	Observer func(fsroot.Root) Observer
	Exits    func(pid int) <-chan struct{}
	VIPs     VIPReleaser
	// ServiceID asks OneGate for this VM's OneFlow service (nil: the real
	// OneGate, when the context has ONEGATE_ENDPOINT).
	ServiceID func(ctx context.Context, env onecontext.Env, root fsroot.Root) (int, error)
	// Desired tells which running services a reconcile must re-apply (nil:
	// ask the service binaries under the root, Binaries).
	Desired func(rt *cli.Runtime) Desired
}

// serviceIDTimeout bounds the OneGate lookup: a cloud without a reachable
// OneGate must not hold a recontextualization up.
const serviceIDTimeout = 3 * time.Second

// oneGateServiceID is the real ServiceID: GET /service, one attempt.
func oneGateServiceID(ctx context.Context, env onecontext.Env, root fsroot.Root) (int, error) {
	cfg, err := onegate.ConfigFromContext(env, root)
	if err != nil {
		return 0, err
	}
	cfg.Attempts, cfg.Timeout = 1, serviceIDTimeout
	c, err := onegate.New(cfg, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	svc, err := c.Service(ctx)
	if err != nil {
		return 0, err
	}
	return svc.ID, nil
}

// context is the context with SERVICE_ID from OneGate when the VRID would
// come from it and the context lacks it (user guide: the router "tries to
// detect if SERVICE_ID is defined (or queries OneGate for that id)"). When
// OneGate cannot say (no endpoint, no service: a plain virtual router) the
// VRID falls back to VMID as before.
func (s Service) context(ctx context.Context, rt *cli.Runtime, env onecontext.Env) onecontext.Env {
	if !keepalived.NeedsServiceID(env) {
		return env
	}
	lookup := s.ServiceID
	if lookup == nil {
		if env.Get(onegate.VarEndpoint) == "" {
			return env
		}
		lookup = oneGateServiceID
	}
	ctx, cancel := context.WithTimeout(ctx, serviceIDTimeout)
	defer cancel()
	id, err := lookup(ctx, env, rt.Root)
	if err != nil {
		rt.Log.Warn("no SERVICE_ID from OneGate; the VRID comes from VMID", "err", err)
		return env
	}
	rt.Log.Info("SERVICE_ID from OneGate", "service_id", id)
	return env.With(fmt.Sprintf("%s=%d", keepalived.VarServiceID, id))
}

func (s Service) exits() func(int) <-chan struct{} {
	if s.Exits != nil {
		return s.Exits
	}
	return Exits
}

func (s Service) releaser() VIPReleaser {
	if s.VIPs != nil {
		return s.VIPs
	}
	return Netlink{}
}

func (s Service) desired(rt *cli.Runtime) Desired {
	if s.Desired != nil {
		return s.Desired(rt)
	}
	return Binaries{Root: rt.Root, EnvFile: rt.EnvFile}
}

func (s Service) services(rt *cli.Runtime) openrc.Services {
	if s.Services != nil {
		return s.Services(rt.Root)
	}
	return openrc.RC{Root: rt.Root}
}

func (s Service) observer(rt *cli.Runtime) Observer {
	if s.Observer != nil {
		return s.Observer(rt.Root)
	}
	return System{Root: rt.Root, Addrs: Netlink{}}
}

// Info describes one-failover.
func (Service) Info() cli.Info {
	vars := []cli.Var{
		{Name: keepalived.VarInterfaces, Default: "all NICs", Help: "NICs keepalived manages (management NICs never)"},
		{Name: keepalived.VarVRID, Default: keepalived.VarLegacyVRID, Help: "virtual_router_id 1-255; else SERVICE_ID % 255 + 1 (SERVICE_ID asked of OneGate when the context lacks it), else VMID % 255 + 1"},
		{Name: keepalived.VarPriority, Default: "100", Help: "VRRP priority 1-254"},
		{Name: keepalived.VarInterval, Default: "1", Help: "advertisement interval in seconds; a fraction (e.g. 0.1) uses VRRPv3"},
		{Name: keepalived.VarPassword, Default: keepalived.VarLegacyPassword, Help: "PASS authentication, at most 8 characters (VRRPv2 only)"},
		{Name: keepalived.VarNoPreempt, Default: "NO", Help: "YES: a returning router with a higher priority does not take the VIPs back"},
		{Name: keepalived.VarPreemptDelay, Default: "0", Help: "seconds a higher-priority router waits before taking the VIPs back (0-1000)"},
		{Name: "ONEAPP_VNF_KEEPALIVED_ETHx_{VRID,PRIORITY,INTERVAL,PASSWORD}", Default: "the global value", Help: "per-NIC overrides"},
		{Name: "ONEAPP_VNF_KEEPALIVED_ETHx_SKIP", Default: "NO", Help: "no VRRP traffic on ethX (its VIPs still follow its VRID group)"},
		{Name: "ONEAPP_VNF_KEEPALIVED_ETHx_UNICAST_PEERS", Default: "multicast", Help: "addresses of the other routers on ethX: VRRP goes unicast (the router's own address may be listed)"},
		{Name: conntrackd.VarEnabled, Default: "NO", Help: "sync connection state between the routers (conntrackd), so NAT'd connections survive a failover"},
		{Name: conntrackd.VarInterface, Default: "the first VRRP NIC", Help: "the NIC conntrackd syncs over"},
	}
	for _, e := range Table() {
		def := "NO"
		if e.Default {
			def = "YES"
		}
		vars = append(vars, cli.Var{Name: e.Var, Default: def, Help: "start " + e.Name + " on the master"})
	}
	return cli.Info{
		Name:    Name,
		Summary: "Failover: keepalived VRRP, and the data-plane services on the master only",
		Description: "configure renders keepalived's configuration (" + keepalived.MainFile + ", " + keepalived.GlobalFile + ", " + keepalived.VRRPFile +
			"), checks it with keepalived -t before it replaces the live files, brings floating-only NICs up, and starts keepalived, conntrackd " +
			"(when enabled) and the one-failover daemon through OpenRC, or reloads them: a change that keeps the VRRP layout reloads keepalived " +
			"without a failover. The daemon (start) reads keepalived's notify FIFO and learns the current state from the VIPs on the NICs; on the " +
			"master, once the VIPs are present, it starts the enabled services of its table and stops the disabled ones; on a backup or in fault " +
			"it stops them; it restarts an enabled service that crashes while master. Without any floating IP the router serves alone. " +
			"stop leaves keepalived and the services as they are.",
		Kind:        cli.Daemon,
		Scripts:     []string{Name, keepalived.Service, conntrackd.Service},
		Vars:        vars,
		EveryRouter: true,
	}
}

// files are the rendered configuration files.
func files(spec Spec) (map[string][]byte, []byte) {
	var ct []byte
	if spec.Conntrackd.Enabled {
		ct = conntrackd.Render(spec.Conntrackd)
	}
	return map[string][]byte{
		keepalived.MainFile:   keepalived.MainConfig(),
		keepalived.GlobalFile: keepalived.GlobalConfig(),
		keepalived.VRRPFile:   keepalived.RenderVRRP(spec.VRRP),
	}, ct
}

// Configure renders and checks keepalived's (and conntrackd's)
// configuration and brings keepalived, conntrackd and the daemon in line
// with it. Invalid context changes nothing (exit 2); a configuration
// keepalived rejects changes nothing either.
func (s Service) Configure(ctx context.Context, rt *cli.Runtime) error {
	spec, err := FromContext(s.context(ctx, rt, rt.Env))
	if err != nil {
		return err
	}
	for _, w := range spec.Warnings() {
		rt.Log.Warn(w)
	}
	svcs := s.services(rt)
	checker := s.Checker
	if checker == nil {
		checker = keepalived.Exec{}
	}
	kfiles, ctConf := files(spec)
	old, _ := rt.Root.ReadFile(keepalived.VRRPFile)
	layoutChanged := keepalived.LayoutOf(old) != spec.VRRP.Layout()
	changed, err := keepalived.Files{Root: rt.Root, Checker: checker}.Write(ctx, kfiles)
	if err != nil {
		return err
	}
	links := s.Links
	if links == nil {
		links = NetlinkLinks{}
	}
	var errs []error
	for _, nic := range spec.VRRP.LinksUp {
		if err := links.Up(nic); err != nil {
			rt.Log.Warn("floating-only NIC not brought up", "nic", nic, "err", err)
		}
	}
	errs = append(errs, convergeSyncRules(ctx, rt, spec.Conntrackd.Enabled))
	ctVerb, err := convergeConntrackd(ctx, rt, svcs, spec, ctConf)
	errs = append(errs, err)
	kVerb, err := keepalived.Converge(ctx, svcs, len(changed) > 0, layoutChanged && len(changed) > 0)
	errs = append(errs, err)
	fVerb, err := convergeSelf(ctx, svcs)
	errs = append(errs, err)
	rt.Log.Info("configured", "instances", len(spec.VRRP.Instances), "layout", spec.VRRP.Layout(), "files_changed", len(changed),
		"keepalived", verbOrKept(kVerb), "conntrackd", verbOrKept(ctVerb), "one-failover", verbOrKept(fVerb))
	return errors.Join(errs...)
}

func verbOrKept(v string) string {
	if v == "" {
		return "unchanged"
	}
	return v
}

// convergeConntrackd writes conntrackd.conf and (re)starts conntrackd when
// enabled; stops it when not. conntrackd has no reload: a changed
// configuration restarts it (the kernel keeps the connections meanwhile).
func convergeConntrackd(ctx context.Context, rt *cli.Runtime, svcs openrc.Services, spec Spec, conf []byte) (string, error) {
	if !spec.Conntrackd.Enabled {
		if !svcs.Installed(conntrackd.Service) {
			return "", nil
		}
		st, err := svcs.Status(ctx, conntrackd.Service)
		if err != nil || st == openrc.Stopped {
			return "", err
		}
		return "stop", svcs.Run(ctx, conntrackd.Service, "stop")
	}
	if !svcs.Installed(conntrackd.Service) {
		return "", fmt.Errorf("%s=YES but conntrackd has no OpenRC script (run one-failover install)", conntrackd.VarEnabled)
	}
	wrote, err := rt.Root.WriteFile(conntrackd.ConfigFile, conf, 0o640)
	if err != nil {
		return "", fmt.Errorf("writing conntrackd configuration: %w", err)
	}
	st, err := svcs.Status(ctx, conntrackd.Service)
	if err != nil {
		return "", err
	}
	verb := "start"
	switch {
	case st == openrc.Crashed, (st == openrc.Started || st == openrc.Starting) && wrote:
		verb = "restart"
	case st == openrc.Started || st == openrc.Starting:
		return "", nil
	}
	if err := svcs.Run(ctx, conntrackd.Service, verb); err != nil {
		return verb, fmt.Errorf("converging conntrackd: %w", err)
	}
	return verb, nil
}

// ChainSync is one-failover's chain in the nat table on a router whose
// connections are synced.
const ChainSync = "FAILOVER-SYNC"

// syncRuleset is what connection sync needs of netfilter on every router,
// the backup included. The kernel tracks connections in a network
// namespace only while some rule needs tracking, and translates the
// replies of NAT'd ones only where the nat table is hooked. On a backup
// that never served, neither holds until NAT4 starts on it, so a packet
// of a synced connection reaching the new master before NAT4 is applied
// (the far side's retransmission, typically) is not translated back: it
// reaches the VIP itself and is answered with a reset, killing the
// connection the sync was to keep. A chain of its own, hooked from nat
// PREROUTING and POSTROUTING, whose one rule matches on conntrack state
// and changes nothing, keeps both in place.
func syncRuleset() netfilter.Ruleset {
	return netfilter.Ruleset{
		Owner: Name,
		Tables: []netfilter.Table{{Name: "nat", Chains: []netfilter.Chain{
			{Name: ChainSync, Rules: []string{"-m conntrack --ctstate INVALID -j RETURN"}},
		}}},
		Jumps: []netfilter.Jump{
			{Table: "nat", From: "PREROUTING", To: ChainSync},
			{Table: "nat", From: "POSTROUTING", To: ChainSync},
		},
	}
}

// convergeSyncRules applies syncRuleset when connections are synced and
// removes it when not.
func convergeSyncRules(ctx context.Context, rt *cli.Runtime, enabled bool) error {
	if rt.Netfilter == nil {
		return nil
	}
	if !enabled {
		if err := rt.Netfilter.Teardown(ctx, syncRuleset()); err != nil {
			return fmt.Errorf("removing %s: %w", ChainSync, err)
		}
		return nil
	}
	if _, err := rt.Netfilter.Apply(ctx, syncRuleset()); err != nil {
		return fmt.Errorf("applying %s (connection tracking for synced connections): %w", ChainSync, err)
	}
	return nil
}

// convergeSelf starts the one-failover daemon, or makes a running one read
// the new context (SIGHUP: no restart, no transition).
func convergeSelf(ctx context.Context, svcs openrc.Services) (string, error) {
	if !svcs.Installed(Name) {
		return "", fmt.Errorf("no OpenRC script %s (run one-failover install)", Name)
	}
	st, err := svcs.Status(ctx, Name)
	if err != nil {
		return "", err
	}
	verb := "start"
	switch st {
	case openrc.Started, openrc.Starting:
		verb = "reload"
	case openrc.Crashed:
		verb = "restart"
	}
	if err := svcs.Run(ctx, Name, verb); err != nil {
		return verb, fmt.Errorf("converging %s: %w", Name, err)
	}
	return verb, nil
}

// Start runs the daemon until SIGTERM; SIGHUP reloads the context.
func (s Service) Start(ctx context.Context, rt *cli.Runtime) error {
	// Before anything else: SIGHUP's default action would end the process.
	reload, stopHangups := cli.Hangups(nil)
	defer stopHangups()
	spec, err := FromContext(s.context(ctx, rt, rt.Env))
	if err != nil {
		return err
	}
	for _, w := range spec.Warnings() {
		rt.Log.Warn(w)
	}
	d := &Daemon{
		Services: s.services(rt),
		Observer: s.observer(rt),
		Scripts:  InitScripts{Root: rt.Root},
		Exits:    s.exits(),
		VIPs:     s.releaser(),
		FIFO:     rt.Root.Path(keepalived.FIFO),
		Log:      rt.Log,
		Reload:   reload,
		Desired:  s.desired(rt),
		LoadSpec: func() (Spec, error) {
			if rt.LoadEnv == nil {
				return spec, nil
			}
			env, warnings, err := rt.LoadEnv()
			for _, w := range warnings {
				rt.Log.Warn(w)
			}
			var next Spec
			if err == nil {
				next, err = FromContext(s.context(ctx, rt, env))
			}
			// status shows a context the daemon could not take.
			rt.RecordError("reload", err)
			return next, err
		},
	}
	return d.Run(ctx, spec)
}

// Install gives the image a keepalived configuration that runs no VRRP
// until the first contextualization renders the real one: the distro's
// sample keepalived.conf would float example addresses on eth0 at the first
// boot. A configuration already rendered by one-failover is left alone.
func (Service) Install(ctx context.Context, rt *cli.Runtime) error {
	kfiles, _ := files(Spec{})
	for _, p := range []string{keepalived.VRRPFile, keepalived.GlobalFile, keepalived.MainFile} {
		old, err := rt.Root.ReadFile(p)
		if err == nil && (p != keepalived.MainFile || bytes.Equal(old, kfiles[p])) {
			continue
		}
		if _, err := rt.Root.WriteFile(p, kfiles[p], 0o644); err != nil {
			return fmt.Errorf("installing keepalived's neutral configuration: %w", err)
		}
	}
	return nil
}

// Stop leaves everything as it is: stopping the daemon must not take the
// data plane down (a restart of one-failover is no failover).
func (Service) Stop(ctx context.Context, rt *cli.Runtime) error {
	rt.Log.Info("one-failover stop leaves keepalived and the data-plane services as they are")
	return nil
}

// Render prints keepalived's files (and conntrackd's when enabled).
func (s Service) Render(ctx context.Context, rt *cli.Runtime) ([]cli.Artefact, error) {
	spec, err := FromContext(s.context(ctx, rt, rt.Env))
	if err != nil {
		return nil, err
	}
	for _, w := range spec.Warnings() {
		rt.Log.Warn(w)
	}
	kfiles, ct := files(spec)
	arts := []cli.Artefact{
		{Target: keepalived.MainFile, Body: kfiles[keepalived.MainFile]},
		{Target: keepalived.GlobalFile, Body: kfiles[keepalived.GlobalFile]},
		{Target: keepalived.VRRPFile, Body: kfiles[keepalived.VRRPFile]},
	}
	if ct != nil {
		arts = append(arts, cli.Artefact{Target: conntrackd.ConfigFile, Body: ct},
			cli.Artefact{Target: "iptables:nat", Body: netfilter.Render(syncRuleset())["nat"]})
	}
	return arts, nil
}

// Status compares the files, the daemons and the services with the
// context and the router's role.
func (s Service) Status(ctx context.Context, rt *cli.Runtime) (cli.Report, error) {
	spec, err := FromContext(s.context(ctx, rt, rt.Env))
	if err != nil {
		return cli.Report{}, err
	}
	rep := cli.Report{Enabled: true}
	kfiles, ct := files(spec)
	if ct != nil {
		kfiles[conntrackd.ConfigFile] = ct
	}
	for _, p := range []string{keepalived.MainFile, keepalived.GlobalFile, keepalived.VRRPFile, conntrackd.ConfigFile} {
		want, ok := kfiles[p]
		if !ok {
			continue
		}
		if got, err := rt.Root.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			rep.Drift = append(rep.Drift, p+" differs from the context (one-failover configure rewrites it)")
		}
	}
	svcs := s.services(rt)
	daemons := []string{keepalived.Service, Name}
	if spec.Conntrackd.Enabled {
		daemons = append(daemons, conntrackd.Service)
	}
	running := 0
	for _, d := range daemons {
		st, _ := svcs.Status(ctx, d)
		if st != openrc.Started {
			rep.Drift = append(rep.Drift, fmt.Sprintf("%s is %s", d, st))
		} else {
			running++
		}
	}
	rep.Applied = running == len(daemons)
	obs := s.observer(rt).Observe(spec.VRRP.Instances)
	role := Decide(State{}, Event{Kind: Configured, Instances: instancesOf(spec), Obs: obs}).Next.Role()
	rep.Details = append(rep.Details, fmt.Sprintf("role: %s (layout: %s)", role, spec.VRRP.Layout()))
	for _, in := range spec.VRRP.Instances {
		var vips []string
		for _, v := range in.VIPs {
			vips = append(vips, v.Prefix.String()+"@"+v.Dev)
		}
		rep.Details = append(rep.Details, fmt.Sprintf("%s: VRID %d on %s, VIPs %s: %s", in.Name, in.VRID, in.Interface, cli.List(vips), presence(obs.VIPs[in.Name], len(in.VIPs))))
	}
	var states []string
	for _, d := range spec.Services {
		if !svcs.Installed(d.Name) {
			continue
		}
		st, _ := svcs.Status(ctx, d.Name)
		states = append(states, fmt.Sprintf("%s=%s", d.Name, st))
		up := st == openrc.Started || st == openrc.Starting
		switch {
		case role == Master && d.Enabled && !up:
			rep.Drift = append(rep.Drift, fmt.Sprintf("master, but the enabled %s is %s", d.Name, st))
		case role == Master && !d.Enabled && up:
			rep.Drift = append(rep.Drift, fmt.Sprintf("master, but the disabled %s is %s", d.Name, st))
		case (role == Backup || role == Fault) && up:
			rep.Drift = append(rep.Drift, fmt.Sprintf("%s, but %s is %s", strings.ToLower(string(role)), d.Name, st))
		}
	}
	rep.Details = append(rep.Details, "services: "+cli.List(states))
	return rep, nil
}

func presence(p Presence, n int) string {
	switch {
	case n == 0:
		return "no VIPs"
	case p == AllVIPs:
		return "all present"
	case p == SomeVIPs:
		return "some present"
	}
	return "none present"
}

// InitScripts reads the OpenRC scripts under a root.
type InitScripts struct{ Root fsroot.Root }

var reloadCommand = regexp.MustCompile(`(?m)^\s*extra_(started_)?commands="[^"]*\breload\b`)

// CanReload reports whether /etc/init.d/<service> declares a reload
// command (the oneshots re-apply the context in place with it).
func (i InitScripts) CanReload(service string) bool {
	b, err := i.Root.ReadFile("/etc/init.d/" + service)
	return err == nil && reloadCommand.Match(b)
}
