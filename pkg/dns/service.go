package dns

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/openrc"
)

// Service is one-dns. It is a oneshot wrapper around the unbound OpenRC
// service rather than a foreground daemon: unbound is the daemon, supervised
// by OpenRC, and between two contexts one-dns has nothing to watch (VIPs
// that move in later are already bound, with ip-freebind). A second
// long-running process would only add a thing that can die.
type Service struct {
	// Services returns the service manager for a root (nil: OpenRC's
	// rc-service, scripts under <root>/etc/init.d).
	Services func(fsroot.Root) openrc.Services
	// Check judges candidate files (nil: unbound-checkconf).
	Check Checker
	// Probe asks unbound whether it answers (nil: a query to 127.0.0.1:53).
	Probe Prober
}

// Info describes one-dns.
func (Service) Info() cli.Info {
	return cli.Info{
		Name:    "one-dns",
		Summary: "DNS: unbound recursor for the router's private networks",
		Description: "Configures unbound (" + ConfigFile + ", checked with unbound-checkconf before it replaces the live file) " +
			"to listen on the addresses of the ONEAPP_VNF_DNS_INTERFACES NICs (own address and VIPs; management NICs never), " +
			"to answer only ONEAPP_VNF_DNS_ALLOWED_NETWORKS (default: the subnets of those NICs), to resolve from the root servers " +
			"or through ONEAPP_VNF_DNS_NAMESERVERS (with root servers off and no nameservers: the context's DNS and ETHx_DNS), " +
			"and to serve ipX.ethY.<domain>, vipX.ethY.<domain> and epX.ethY.<domain> with the router's addresses. " +
			"Oneshot: start writes the file and starts unbound (reloads it when it runs and the file changed, restarts it when " +
			"the listening addresses changed, leaves it alone when nothing changed); stop stops unbound.",
		Kind:    cli.Oneshot,
		Scripts: []string{"one-dns", UnboundService},
		Vars: []cli.Var{
			{Name: VarEnabled, Default: "NO", Help: "enable the DNS recursor (YES/NO)"},
			{Name: VarInterfaces, Default: "all NICs", Help: "NICs to listen on: ethX (its IP and VIPs), ethX/addr, addr, with @port; !ethX excludes"},
			{Name: VarAllowedNetworks, Default: "subnets of the listened NICs", Help: "client networks allowed to query (CIDR list)"},
			{Name: VarUseRootServers, Default: "YES", Help: "resolve from the root servers (YES/NO); with nameservers: fall back to them"},
			{Name: VarNameservers, Default: "", Help: "upstream nameservers to forward to, IP[@PORT] list"},
			{Name: VarUpstreamTimeout, Default: fmt.Sprint(DefaultUpstreamTimeout), Help: "upstream timeout (milliseconds)"},
			{Name: VarMaxCacheTTL, Default: fmt.Sprint(DefaultMaxCacheTTL), Help: "maximum caching time (seconds)"},
			{Name: VarTCPDisabled, Default: "NO", Help: "do not serve over TCP (YES/NO)"},
			{Name: VarUDPDisabled, Default: "NO", Help: "do not serve over UDP (YES/NO)"},
			{Name: VarClusterDomain, Default: DefaultDomain, Help: "domain of the local names ipX/vipX/epX.ethY.<domain>"},
		},
	}
}

func (s Service) unbound(rt *cli.Runtime) Unbound {
	u := Unbound{Root: rt.Root, Check: s.Check, Probe: s.Probe}
	if s.Services != nil {
		u.RC = s.Services(rt.Root)
	} else {
		u.RC = openrc.RC{Root: rt.Root}
	}
	if u.Check == nil {
		u.Check = CheckConf
	}
	if u.Probe == nil {
		u.Probe = ProbeLoopback
	}
	return u
}

// spec parses the context and adds the host's root hints.
func spec(rt *cli.Runtime) (Spec, error) {
	sp, err := FromContext(rt.Env)
	if err != nil {
		return Spec{}, err
	}
	sp.RootHints = DetectRootHints(rt.Root)
	return sp, nil
}

// warn logs what the context asks for that the user may not expect.
func warn(rt *cli.Runtime, sp Spec) {
	if len(sp.Skipped) > 0 {
		rt.Log.Warn("management NICs never serve DNS", "var", VarInterfaces, "skipped", strings.Join(sp.Skipped, ","))
	}
	if len(sp.Unaddressed) > 0 {
		rt.Log.Warn("NICs without an address: nothing to listen on", "var", VarInterfaces, "nics", strings.Join(sp.Unaddressed, ","))
	}
	if len(sp.Served) == 0 {
		rt.Log.Warn("no NIC to serve: unbound answers on the loopback only", "var", VarInterfaces)
	}
	if len(sp.IgnoredDNS) > 0 {
		var a []string
		for _, x := range sp.IgnoredDNS {
			a = append(a, x.String())
		}
		rt.Log.Info("context nameservers not used as forwarders (the router itself, loopback or IPv6)", "addrs", strings.Join(a, ","))
	}
	if sp.Upstream == UpstreamNone {
		rt.Log.Warn("no upstream: root servers are off and no nameserver is set; only the local zone answers",
			"vars", VarUseRootServers+","+VarNameservers+",DNS,ETHx_DNS")
	}
	for _, p := range sp.Allowed {
		if p.Bits() == 0 {
			rt.Log.Warn("every client is allowed: this is an open resolver", "var", VarAllowedNetworks, "network", p.String())
		}
	}
}

// Configure validates the context and writes unbound.conf (checked); unbound
// is not touched (start or reload applies it).
func (s Service) Configure(ctx context.Context, rt *cli.Runtime) error {
	sp, err := spec(rt)
	if err != nil {
		return err
	}
	if !sp.Enabled {
		rt.Log.Info("DNS is disabled: nothing to configure", "var", VarEnabled)
		return nil
	}
	changed, err := s.unbound(rt).WriteConfig(ctx, Render(sp))
	if err != nil {
		return err
	}
	rt.Log.Info("configured", "file", ConfigFile, "changed", changed)
	return nil
}

// Start applies the context; when DNS is disabled it stops unbound.
func (s Service) Start(ctx context.Context, rt *cli.Runtime) error {
	sp, err := spec(rt)
	if err != nil {
		return err
	}
	u := s.unbound(rt)
	if !sp.Enabled {
		rt.Log.Info("DNS is disabled: stopping unbound", "var", VarEnabled)
		return u.Stop(ctx)
	}
	warn(rt, sp)
	d := Render(sp)
	rt.Log.Debug("unbound.conf", "content", string(d.Config))
	res, err := u.Apply(ctx, d, !sp.UDP)
	if err != nil {
		return err
	}
	rt.Log.Info("DNS applied", "listeners", len(sp.Listeners), "served", cli.List(sp.Served), "allowed", len(sp.Allowed),
		"upstream", string(sp.Upstream), "forwarders", len(sp.Forwarders), "records", len(sp.Records),
		"file_changed", res.FileChanged, "unbound", string(res.Action))
	return nil
}

// Stop stops unbound; it needs no valid context.
func (s Service) Stop(ctx context.Context, rt *cli.Runtime) error {
	if err := s.unbound(rt).Stop(ctx); err != nil {
		return err
	}
	rt.Log.Info("stopped unbound")
	return nil
}

// Render prints unbound.conf.
func (s Service) Render(ctx context.Context, rt *cli.Runtime) ([]cli.Artefact, error) {
	sp, err := spec(rt)
	if err != nil {
		return nil, err
	}
	if !sp.Enabled {
		rt.Log.Info("DNS is disabled: nothing to apply", "var", VarEnabled)
		return nil, nil
	}
	return []cli.Artefact{{Target: ConfigFile, Body: Render(sp).Config}}, nil
}

// Status compares unbound and its file with the context.
func (s Service) Status(ctx context.Context, rt *cli.Runtime) (cli.Report, error) {
	sp, err := spec(rt)
	if err != nil {
		return cli.Report{}, err
	}
	d := Render(sp)
	live, err := s.unbound(rt).Inspect(ctx, d, !sp.UDP)
	if err != nil {
		return cli.Report{}, err
	}
	rep := cli.Report{Enabled: sp.Enabled, Applied: live.Running && live.Answers}
	rep.Details = append(rep.Details, "unbound: "+string(live.State))
	if !sp.Enabled {
		if live.State == openrc.Started {
			rep.Drift = append(rep.Drift, "DNS is disabled but unbound runs")
		}
		return rep, nil
	}
	switch {
	case live.State == openrc.Missing:
		rep.Drift = append(rep.Drift, "unbound's OpenRC script is not installed (one-dns install)")
	case live.State != openrc.Started:
		rep.Drift = append(rep.Drift, "unbound is "+string(live.State))
	case !live.Answers:
		rep.Drift = append(rep.Drift, fmt.Sprintf("unbound does not answer on 127.0.0.1:%d: %v", Port, live.ProbeErr))
	}
	if !live.File {
		rep.Drift = append(rep.Drift, ConfigFile+" differs from the context")
	}
	if live.State == openrc.Started && !live.Running {
		rep.Drift = append(rep.Drift, "unbound runs with an older configuration (rc-service one-dns reload)")
	}
	var ls []string
	for _, l := range sp.Listeners {
		ls = append(ls, addrPort(l.Addr, Port))
	}
	rep.Details = append(rep.Details,
		"listening: "+cli.List(ls),
		"allowed: "+cli.List(prefixes(sp.Allowed)),
		"upstream: "+string(sp.Upstream)+" "+cli.List(addrPorts(sp.Forwarders)),
		fmt.Sprintf("local zone: %s. (%d names)", sp.Domain, len(sp.Records)))
	return rep, nil
}

func prefixes(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func addrPorts(aps []netip.AddrPort) []string {
	var out []string
	for _, a := range aps {
		out = append(out, addrPort(a, Port))
	}
	return out
}
