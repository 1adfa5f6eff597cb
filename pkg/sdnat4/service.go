package sdnat4

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/conntrackd"
	"github.com/hypercx/vrouter/pkg/ifaddr"
	"github.com/hypercx/vrouter/pkg/netfilter"
	"github.com/hypercx/vrouter/pkg/onegate"
)

// StatePath is where the running daemon says what it maps (under --root).
const StatePath = "/run/one-sdnat4.state"

// KeepDir is where the daemon keeps OneGate's last good answers (under
// --root), so a restart during a OneGate outage (rc-service restart,
// one-failover's stop and start) maps what it mapped before. `stop` leaves
// them: they are used only when OneGate does not answer.
const KeepDir = "/run/one-sdnat4/onegate"

// Service is one-sdnat4. Its zero value uses the real OneGate client and
// netlink; tests replace them.
type Service struct {
	// Gate builds the OneGate client (NewGate when nil).
	Gate func(onegate.Config, *slog.Logger) (Gate, func(), error)
	// Netlink opens the netlink seam (System when nil).
	Netlink func() (Netlink, func(), error)
	// Announce sends gratuitous ARP for new public addresses (the real
	// Announce when nil and Netlink is the system's; nothing is sent when
	// a test fakes Netlink and leaves this nil).
	Announce func(dev string, addrs []netip.Addr) error
}

// Info describes one-sdnat4.
func (Service) Info() cli.Info {
	return cli.Info{
		Name:    "one-sdnat4",
		Summary: "SDNAT4: public IPs mapped 1:1 to private VMs, discovered through OneGate",
		Description: "Every ONEAPP_VNF_SDNAT4_REFRESH_RATE seconds, asks OneGate for the router's networks and maps each EXTERNAL NIC alias " +
			"lease (a public address) to the same VM's lease on the alias's parent network, when that address lies in the network of " +
			"an ONEAPP_VNF_SDNAT4_INTERFACES NIC: DNAT in chain DNAT4, SNAT in chain SNAT4 (both hooked first, ahead of NAT4, and " +
			"changed in one iptables-restore transaction), and the public address as a /32 on lo labelled SDNAT4. An unchanged " +
			"poll writes nothing; a OneGate failure keeps the current mappings (a daemon restarted meanwhile uses the last good answers kept in " + KeepDir + "); a lease that cannot be mapped is skipped with a " +
			"warning naming it. Daemon: start runs in the foreground (SIGHUP re-reads the context); stop ends a running daemon " +
			"and removes every rule, chain, jump and lo address of SDNAT4; render and status use what OneGate reports now (while it " +
			"does not answer, the mappings the running daemon keeps).",
		Kind:    cli.Daemon,
		Scripts: []string{"one-sdnat4"},
		Vars: []cli.Var{
			{Name: VarEnabled, Default: "NO", Help: "enable SDNAT4 (YES/NO)"},
			{Name: VarInterfaces, Default: "no NICs", Help: "NICs whose networks hold the private addresses to map (e.g. \"eth0 eth1\"); management NICs are ignored"},
			{Name: VarRefreshRate, Default: "30", Help: "seconds between OneGate polls (1-86400, fractions allowed)"},
			{Name: onegate.VarEndpoint, Default: "", Help: "OneGate endpoint (set by OpenNebula when the VM has TOKEN=YES); required when SDNAT4 is enabled"},
			{Name: onegate.VarToken, Default: onegate.TokenFile, Help: "OneGate token (never logged)"},
			{Name: onegate.VarVMID, Default: "", Help: "this VM's ID, sent to OneGate"},
			{Name: onegate.VarSkipTLSVerify, Default: "NO", Help: "YES: do not verify OneGate's TLS certificate (self-signed clouds)"},
			{Name: conntrackd.VarEnabled, Default: "NO", Help: "YES: hairpin connections are translated to the NIC's VIP instead of masqueraded"},
		},
	}
}

func (s Service) netlink() (Netlink, func(), error) {
	if s.Netlink != nil {
		return s.Netlink()
	}
	return System()
}

// applier is the daemon's Applier, announcing the addresses it adds.
func (s Service) applier(rt *cli.Runtime, nl Netlink) *Applier {
	a := NewApplier(rt.Netfilter, nl)
	switch {
	case s.Announce != nil:
		a.Announce = s.Announce
	case s.Netlink == nil:
		a.Announce = Announce
	}
	return a
}

func (s Service) gate() func(onegate.Config, *slog.Logger) (Gate, func(), error) {
	if s.Gate != nil {
		return s.Gate
	}
	return NewGate
}

// Configure validates the context; SDNAT4 has no static files.
func (Service) Configure(ctx context.Context, rt *cli.Runtime) error {
	_, err := FromContext(rt.Env, rt.Root)
	return err
}

// state is what the running daemon writes to StatePath when its mappings
// or OneGate's health change.
type state struct {
	PID      int      `json:"pid"`
	Enabled  bool     `json:"enabled"`
	Mappings []string `json:"mappings"`
	// Answered: OneGate answered once, and Applied are the mappings the
	// daemon keeps (render and status use them while OneGate does not
	// answer them).
	Answered  bool      `json:"answered"`
	Applied   []Mapping `json:"applied,omitempty"`
	Skipped   []string  `json:"skipped,omitempty"`
	OneGate   string    `json:"onegate"`
	LastError string    `json:"last_error,omitempty"`
	ChangedAt time.Time `json:"changed_at"`
}

// Start runs the daemon in the foreground until SIGTERM or SIGINT.
func (s Service) Start(ctx context.Context, rt *cli.Runtime) error {
	spec, err := FromContext(rt.Env, rt.Root)
	if err != nil {
		return err
	}
	nl, closeNL, err := s.netlink()
	if err != nil {
		return err
	}
	defer closeNL()
	reload, stopHangups := cli.Hangups(func() { rt.Log.Info("SIGHUP: re-reading the context") })
	defer stopHangups()
	var last state
	defer func() { _ = rt.Root.Remove(StatePath) }()
	d := &Daemon{
		Log:   rt.Log,
		Apply: s.applier(rt, nl),
		NewGate: func(cfg onegate.Config, log *slog.Logger) (Gate, func(), error) {
			cfg.KeepDir = rt.Root.Path(KeepDir)
			return s.gate()(cfg, log)
		},
		Reload: reload,
		LoadSpec: func() (Spec, error) {
			if rt.LoadEnv == nil {
				return Spec{}, errors.New("no way to re-read the context")
			}
			env, warnings, err := rt.LoadEnv()
			if err != nil {
				return Spec{}, err
			}
			for _, w := range warnings {
				rt.Log.Warn(w)
			}
			return FromContext(env, rt.Root)
		},
		OnPoll: func(p Poll) {
			st := stateOf(p)
			if st.equal(last) {
				return
			}
			last = st
			st.ChangedAt = time.Now().UTC()
			b, _ := json.MarshalIndent(st, "", "  ")
			if _, err := rt.Root.WriteFile(StatePath, append(b, '\n'), 0o644); err != nil {
				rt.Log.Warn("writing the state file", "err", err)
			}
		},
	}
	return d.Run(ctx, spec)
}

func stateOf(p Poll) state {
	st := state{PID: os.Getpid(), Enabled: p.Enabled, OneGate: "ok", Answered: p.Answered, Applied: p.Mappings}
	for _, m := range p.Mappings {
		st.Mappings = append(st.Mappings, m.String())
	}
	for _, sk := range p.Skips {
		if !sk.Foreign {
			st.Skipped = append(st.Skipped, sk.String())
		}
	}
	switch {
	case !p.Enabled:
		st.OneGate = "not used (disabled)"
	case errors.Is(p.GateErr, onegate.ErrStale):
		st.OneGate = "failing: using its last good answers"
	case p.GateErr != nil:
		st.OneGate = "failing: keeping the current mappings"
	}
	if p.Err != nil {
		st.LastError = p.Err.Error()
	}
	return st
}

func (a state) equal(b state) bool {
	// Applied in full: a reload can move a mapping to another NIC (In,
	// Out) without changing its addresses, and render and status rebuild
	// the rules from these fields during an outage.
	return a.PID == b.PID && a.Enabled == b.Enabled && a.OneGate == b.OneGate && a.LastError == b.LastError && a.Answered == b.Answered &&
		slices.Equal(a.Applied, b.Applied) && slices.Equal(a.Skipped, b.Skipped)
}

func readState(rt *cli.Runtime) (state, bool) {
	var st state
	b, err := rt.Root.ReadFile(StatePath)
	if err != nil || json.Unmarshal(b, &st) != nil || st.PID <= 0 {
		return st, false
	}
	return st, running(st.PID)
}

// running reports whether pid is this process or a live one-sdnat4.
func running(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return err == nil && strings.TrimSpace(string(comm)) == "one-sdnat4"
}

// Stop ends a running daemon (SIGTERM, then waits), then removes every
// rule, chain, jump and lo address of SDNAT4. It needs no valid context and
// is fine on an empty system. Under OpenRC, `rc-service one-sdnat4 stop`
// does both (its supervisor would restart a daemon stopped behind its back).
func (s Service) Stop(ctx context.Context, rt *cli.Runtime) error {
	if st, ok := readState(rt); ok && st.PID != os.Getpid() {
		p, _ := os.FindProcess(st.PID)
		if err := p.Signal(syscall.SIGTERM); err == nil {
			for i := 0; i < 100 && running(st.PID); i++ {
				time.Sleep(50 * time.Millisecond)
			}
			rt.Log.Info("daemon stopped", "pid", st.PID)
		}
	}
	nl, closeNL, err := s.netlink()
	if err != nil {
		return err
	}
	defer closeNL()
	return NewApplier(rt.Netfilter, nl).Teardown(ctx)
}

// desired asks OneGate and works out what SDNAT4 would apply now: a short
// bounded question, as render and status must answer soon.
func (s Service) desired(ctx context.Context, rt *cli.Runtime, spec Spec) (Desired, []Skip, error) {
	g, closeG, err := s.gate()(spec.OneGate.Quick(), rt.Log)
	if err != nil {
		return Desired{}, nil, err
	}
	defer closeG()
	ctx, cancel := context.WithTimeout(ctx, onegate.QuickTotal)
	defer cancel()
	nets, err := g.Networks(ctx)
	switch {
	case err == nil:
	case errors.Is(err, onegate.ErrStale):
		rt.Log.Warn("OneGate failed; using its last good answers", "err", err)
	default:
		return Desired{}, nil, fmt.Errorf("asking OneGate for the mappings: %w", err)
	}
	maps, skips := Discover(nets, spec)
	return Render(spec, maps), skips, nil
}

// desiredOrKept is desired, or, when OneGate does not answer now, what the
// running daemon keeps (it keeps its mappings through an outage, and they
// are no drift); kept then says why. Without a daemon that OneGate
// answered, the failure is the error.
func (s Service) desiredOrKept(ctx context.Context, rt *cli.Runtime, spec Spec) (d Desired, skips []Skip, kept string, err error) {
	d, skips, err = s.desired(ctx, rt, spec)
	if err == nil {
		return d, skips, "", nil
	}
	st, ok := readState(rt)
	if !ok || !st.Enabled || !st.Answered {
		return Desired{}, nil, "", err
	}
	return Render(spec, st.Applied), nil, fmt.Sprintf("OneGate does not answer now (%v): compared with the %d mappings the daemon keeps", err, len(st.Applied)), nil
}

// Render prints the nat table payload and the lo addresses for the
// mappings OneGate reports now.
func (s Service) Render(ctx context.Context, rt *cli.Runtime) ([]cli.Artefact, error) {
	spec, err := FromContext(rt.Env, rt.Root)
	if err != nil {
		return nil, err
	}
	if !spec.Enabled {
		rt.Log.Info("SDNAT4 is disabled: nothing to apply", "var", VarEnabled)
		return nil, nil
	}
	d, skips, kept, err := s.desiredOrKept(ctx, rt, spec)
	if err != nil {
		return nil, err
	}
	if kept != "" {
		rt.Log.Warn(kept)
	}
	for _, sk := range skips {
		if !sk.Foreign {
			rt.Log.Warn("external lease not mapped", "lease", sk.Lease, "reason", sk.Reason)
		}
	}
	if err := d.Rules.Validate(); err != nil {
		return nil, err
	}
	lo := ifaddr.Owned{Dev: Dev, Label: Label}
	return []cli.Artefact{
		{Target: "iptables:nat", Body: netfilter.Render(d.Rules)["nat"]},
		{Target: "addr:" + Dev, Body: lo.Render(d.Addrs)},
	}, nil
}

// Status compares the live rules and lo addresses with what OneGate
// reports now.
func (s Service) Status(ctx context.Context, rt *cli.Runtime) (cli.Report, error) {
	spec, err := FromContext(rt.Env, rt.Root)
	if err != nil {
		return cli.Report{}, err
	}
	nl, closeNL, err := s.netlink()
	if err != nil {
		return cli.Report{}, err
	}
	defer closeNL()
	a := NewApplier(rt.Netfilter, nl)
	present, err := a.Present(ctx)
	if err != nil {
		return cli.Report{}, err
	}
	rep := cli.Report{Enabled: spec.Enabled, Applied: present}
	if st, ok := readState(rt); ok {
		rep.Details = append(rep.Details, fmt.Sprintf("daemon: pid %d, %d mappings, OneGate %s (since %s)",
			st.PID, len(st.Mappings), st.OneGate, st.ChangedAt.Format(time.RFC3339)))
		if st.LastError != "" {
			rep.Details = append(rep.Details, "daemon: the last apply failed: "+st.LastError)
		}
	} else {
		rep.Details = append(rep.Details, "daemon: not running")
	}
	if !spec.Enabled {
		if present {
			rep.Drift = append(rep.Drift, "SDNAT4 is disabled but its chains or lo addresses are present")
		}
		return rep, nil
	}
	d, skips, kept, err := s.desiredOrKept(ctx, rt, spec)
	if err != nil {
		return cli.Report{}, err
	}
	if kept != "" {
		rep.Details = append(rep.Details, kept)
	}
	if rep.Drift, err = a.Diff(ctx, d); err != nil {
		return cli.Report{}, err
	}
	rep.Details = append(rep.Details, fmt.Sprintf("mappings: %d; subnets: %s", len(d.Mappings), spec.subnetList()))
	for i, m := range d.Mappings {
		if i == 20 {
			rep.Details = append(rep.Details, fmt.Sprintf("  ... and %d more", len(d.Mappings)-i))
			break
		}
		rep.Details = append(rep.Details, "  "+m.String()+" (VM "+strconv.Itoa(m.VM)+")")
	}
	for _, sk := range skips {
		if !sk.Foreign {
			rep.Details = append(rep.Details, "not mapped: "+sk.String())
		}
	}
	return rep, nil
}
