package wg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/onegate"
)

// Service is one-wg.
type Service struct {
	// System builds the seams for a runtime (nil: netlink, wgctrl and
	// wireguard-go); the returned func releases them.
	System func(rt *cli.Runtime) (*System, func(), error)
	// Gate builds the OneGate client (nil: from the context). It returns
	// onegate.ErrNotConfigured when the context has no OneGate. readOnly
	// asks for a client that does not retry (render, status, peer).
	Gate func(rt *cli.Runtime, readOnly bool) (Gate, error)
	// Keys generates keys (nil: RandomKeys).
	Keys KeyGen
	// Now is the clock of the timestamps (nil: time.Now).
	Now func() time.Time
}

// Info describes one-wg.
func (Service) Info() cli.Info {
	return cli.Info{
		Name:    "one-wg",
		Summary: "WireGuard VPN server: clients reach the private network through the router",
		Description: "Runs a WireGuard device (in the kernel, or with wireguard-go when the kernel has no WireGuard) whose address is " +
			"the first of ONEAPP_VNF_WG_SUBNET, with ONEAPP_VNF_WG_PEERS peers on the following addresses, listening on " +
			"ONEAPP_VNF_WG_LISTEN_PORT at the endpoint of ONEAPP_VNF_WG_INTERFACE_OUT (its VIP0, else its IP) and giving the peers the " +
			"network of ONEAPP_VNF_WG_INTERFACE_IN. The server and peer configurations are published base64-encoded to the user " +
			"templates of the router's VMs through OneGate (" + AttrServer + ", " + AttrTimestamp + ", " + AttrPeer + "<n>) and kept in " +
			StateFile + " (0600); start reuses the newest stored one, so restarts and failovers keep every key. New keys only when " +
			"nothing usable is stored or the subnet or port changed (all keys), or for added peers. A stored configuration that does " +
			"not parse, or carries commands (PostUp ...), is never used. Oneshot: start applies, stop removes the device. " +
			"render prints public keys and hides private and preshared keys; `one-wg peer N` prints peer N's client configuration " +
			"(`--qr`: as a QR code for the mobile apps).",
		Kind:    cli.Oneshot,
		Scripts: []string{"one-wg"},
		Vars: []cli.Var{
			{Name: VarEnabled, Default: "NO", Help: "enable the VPN server (YES/NO)"},
			{Name: VarInterfaceOut, Default: "", Help: "required: the NIC clients connect to; its VIP0 (else its IP) is the endpoint; never a management NIC"},
			{Name: VarInterfaceIn, Default: "", Help: "required: the NIC of the private network the peers reach (their AllowedIPs); never a management NIC"},
			{Name: VarListenPort, Default: strconv.Itoa(DefaultListenPort), Help: "UDP port (1-65535)"},
			{Name: VarDevice, Default: DefaultDevice, Help: "WireGuard device name"},
			{Name: VarPeers, Default: strconv.Itoa(DefaultPeers), Help: fmt.Sprintf("number of peers (1-%d), each with its keys and address", MaxPeers)},
			{Name: VarSubnet, Default: DefaultSubnet, Help: "peer network: the server is its first address, the peers the next ones; apart from the router's networks"},
		},
	}
}

// Verbs adds `peer N`.
func (s Service) Verbs() []cli.Verb {
	return []cli.Verb{{
		Name:  "peer",
		Usage: "print peer N's client configuration (wg-quick format; --qr: as a QR code)",
		Description: "Prints the configuration peer N (0-based, as " + AttrPeer + "N) imports into its WireGuard client, private key " +
			"included, from the stored configuration. With --qr it is drawn as a QR code on the terminal for the mobile apps. " +
			"Nothing is changed; a peer whose keys are not stored yet needs `one-wg start` first.",
		Args:  "N",
		Bools: []cli.Var{{Name: "qr", Help: "draw the configuration as a QR code (terminal)"}},
		Run:   s.peer,
	}}
}

func (s Service) system(rt *cli.Runtime) (*System, func(), error) {
	if s.System != nil {
		return s.System(rt)
	}
	wc, err := wgctrl.New()
	if err != nil {
		return nil, nil, fmt.Errorf("opening wgctrl: %w", err)
	}
	sys := &System{
		Links: &netlink.Handle{}, Devices: wc, Userspace: WireGuardGo{Root: rt.Root},
		Sysctl: rt.Sysctl, Root: rt.Root, Log: rt.Log,
	}
	return sys, func() { _ = wc.Close() }, nil
}

func (s Service) gate(rt *cli.Runtime, readOnly bool) (Gate, error) {
	if s.Gate != nil {
		return s.Gate(rt, readOnly)
	}
	cfg, err := onegate.ConfigFromContext(rt.Env, rt.Root)
	if err != nil {
		return nil, err
	}
	if readOnly {
		cfg.Attempts, cfg.Timeout = 1, 5*time.Second
	}
	return onegate.New(cfg, rt.Log)
}

func (s Service) keys() KeyGen {
	if s.Keys != nil {
		return s.Keys
	}
	return RandomKeys{}
}

func (s Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// resolution is the configuration worked out from the context and what is
// stored.
type resolution struct {
	spec Spec
	res  Resolved
	gate Gate   // nil: no OneGate in the context
	sh   Shared // what OneGate holds (when fetched)
	// gateErr: OneGate is configured but could not be read.
	gateErr error
}

// resolve reads the stored configurations (OneGate and the local copy) and
// resolves the one to apply. It changes nothing.
func (s Service) resolve(ctx context.Context, rt *cli.Runtime, spec Spec, readOnly bool) (resolution, error) {
	r := resolution{spec: spec}
	g, err := s.gate(rt, readOnly)
	switch {
	case errors.Is(err, onegate.ErrNotConfigured):
		rt.Log.Debug("no OneGate in the context: the configuration is kept locally only", "var", onegate.VarEndpoint)
	case err != nil:
		return r, err
	default:
		r.gate = g
	}
	var cands []Stored
	if r.gate != nil {
		r.sh, r.gateErr = Fetch(ctx, r.gate)
		for _, w := range r.sh.Warnings {
			rt.Log.Warn(w)
		}
		if r.gateErr == nil {
			cands = r.sh.Stored()
		}
	}
	local, err := ReadLocal(rt.Root)
	if err != nil {
		return r, err
	}
	if local != nil {
		cands = append(cands, *local)
	}
	r.res, err = Resolve(spec, Choose(cands), s.keys(), s.now())
	if err != nil {
		return r, err
	}
	for _, w := range r.res.Plan.Warnings {
		rt.Log.Warn(w)
	}
	return r, nil
}

// Configure validates the context; one-wg has no static configuration.
func (Service) Configure(ctx context.Context, rt *cli.Runtime) error {
	spec, err := FromContext(rt.Env)
	if err != nil {
		return err
	}
	if !spec.Enabled {
		rt.Log.Info("WireGuard is disabled: nothing to configure", "var", VarEnabled)
		return nil
	}
	if _, err := onegate.ConfigFromContext(rt.Env, rt.Root); err != nil && !errors.Is(err, onegate.ErrNotConfigured) {
		return err
	}
	rt.Log.Info("context valid", "spec", spec.String())
	return nil
}

// Start resolves the shared configuration, publishes it, keeps the local
// copy and applies the device; when WireGuard is disabled it removes it.
func (s Service) Start(ctx context.Context, rt *cli.Runtime) error {
	spec, err := FromContext(rt.Env)
	if err != nil {
		return err
	}
	if !spec.Enabled {
		rt.Log.Info("WireGuard is disabled: removing the device", "var", VarEnabled)
		return s.Stop(ctx, rt)
	}
	r, err := s.resolve(ctx, rt, spec, false)
	if err != nil {
		return err
	}
	plan := r.res.Plan
	if r.gateErr != nil {
		if plan.NewKeys() {
			// Keys generated now would replace, once published, the
			// ones clients use; one-failover retries the start.
			return fmt.Errorf("OneGate is configured but could not be read, so the stored configuration is unknown; "+
				"not generating keys the router's other instances would not know: %w", r.gateErr)
		}
		rt.Log.Warn("OneGate could not be read; using the local copy", "err", r.gateErr)
	}
	if r.gate != nil && r.gateErr == nil {
		pr, err := Publish(ctx, r.gate, r.sh, r.res.Attrs)
		var pe *PartialError
		switch {
		case errors.As(err, &pe):
			rt.Log.Warn("published to some router VMs only; the others get it at the next start", "failed", strings.Join(pr.Failed, ","), "err", err)
		case err != nil:
			rt.Log.Warn("publishing to OneGate failed; the configuration is kept locally and published at the next start", "err", err)
		}
		if pr.Updated > 0 || pr.Erased > 0 {
			rt.Log.Info("published", "vms", pr.Updated, "erased", pr.Erased, "timestamp", plan.Timestamp)
		}
	}
	if _, err := WriteLocal(rt.Root, r.res.Attrs); err != nil {
		return err
	}
	sys, release, err := s.system(rt)
	if err != nil {
		return err
	}
	defer release()
	d := Render(spec, r.res.Config)
	res, err := sys.Apply(ctx, d)
	if err != nil {
		return err
	}
	for _, c := range res.Changes {
		rt.Log.Debug("change", "device", spec.Device, "what", c)
	}
	keys := "reused from " + plan.Reused
	switch {
	case plan.Fresh:
		keys = "new: " + plan.Reason
	case len(plan.NewPeers) > 0:
		keys += fmt.Sprintf("; new keys for peers %s", ints(plan.NewPeers))
	}
	rt.Log.Info("applied", "device", spec.Device, "mode", res.Mode, "created", res.Created, "changes", len(res.Changes),
		"endpoint", spec.EndpointAddr().String(), "peers", spec.Peers, "dropped", len(plan.Dropped), "keys", keys, "timestamp", plan.Timestamp)
	if v, err := rt.Sysctl.Get("net.ipv4.conf." + spec.In + ".forwarding"); err == nil && v != "1" {
		rt.Log.Warn("replies from the private network reach the peers only with forwarding on "+spec.In+" (one-router4)", "var", VarInterfaceIn)
	}
	return nil
}

func ints(xs []int) string {
	var s []string
	for _, x := range xs {
		s = append(s, strconv.Itoa(x))
	}
	return strings.Join(s, ",")
}

// Stop removes the device (the one applied, and the context's) and stops
// wireguard-go; it needs no valid context. Keys stay stored.
func (s Service) Stop(ctx context.Context, rt *cli.Runtime) error {
	sys, release, err := s.system(rt)
	if err != nil {
		return err
	}
	defer release()
	done, err := sys.Teardown(ctx, DeviceOf(rt.Env))
	for _, d := range done {
		rt.Log.Info("stopped", "what", d)
	}
	return err
}

// Render prints the device, the address, forwarding, the attributes
// published and the peers' configurations, without key material.
func (s Service) Render(ctx context.Context, rt *cli.Runtime) ([]cli.Artefact, error) {
	spec, err := FromContext(rt.Env)
	if err != nil {
		return nil, err
	}
	if !spec.Enabled {
		rt.Log.Info("WireGuard is disabled: nothing to apply", "var", VarEnabled)
		return nil, nil
	}
	r, err := s.resolve(ctx, rt, spec, true)
	if err != nil {
		return nil, err
	}
	if r.gateErr != nil {
		rt.Log.Warn("OneGate could not be read; showing the local copy", "err", r.gateErr)
	}
	return Artefacts(spec, r.res), nil
}

// Status compares the live device with the configuration start would apply,
// and the router VMs' stored configurations with it.
func (s Service) Status(ctx context.Context, rt *cli.Runtime) (cli.Report, error) {
	spec, err := FromContext(rt.Env)
	if err != nil {
		return cli.Report{}, err
	}
	sys, release, err := s.system(rt)
	if err != nil {
		return cli.Report{}, err
	}
	defer release()
	rep := cli.Report{Enabled: spec.Enabled}
	if !spec.Enabled {
		if l, err := sys.Links.LinkByName(spec.Device); err == nil && (l.Type() == linkKernel || l.Type() == linkTun) {
			rep.Drift = append(rep.Drift, "WireGuard is disabled but device "+spec.Device+" exists")
		}
		return rep, nil
	}
	r, err := s.resolve(ctx, rt, spec, true)
	if err != nil {
		return cli.Report{}, err
	}
	live, err := sys.Inspect(ctx, Render(spec, r.res.Config))
	if err != nil {
		return cli.Report{}, err
	}
	plan := r.res.Plan
	rep.Applied = live.Exists && len(live.Drift) == 0
	rep.Drift = append(rep.Drift, live.Drift...)
	switch {
	case plan.Fresh:
		rep.Drift = append(rep.Drift, "start would generate new keys: "+plan.Reason)
	case len(plan.NewPeers) > 0:
		rep.Drift = append(rep.Drift, "start would generate new keys for peers "+ints(plan.NewPeers))
	case plan.Changed:
		rep.Drift = append(rep.Drift, "the stored configuration differs from the context (start publishes it again)")
	}
	switch {
	case r.gate == nil:
		rep.Details = append(rep.Details, "OneGate: not configured; the configuration is kept in "+StateFile+" only")
	case r.gateErr != nil:
		rep.Details = append(rep.Details, "OneGate: could not be read: "+r.gateErr.Error())
	default:
		if out := r.sh.Outdated(r.res.Attrs); len(out) > 0 && !plan.Changed {
			rep.Drift = append(rep.Drift, "OneGate: "+strings.Join(out, ", ")+" do not hold the current configuration")
		}
		rep.Details = append(rep.Details, fmt.Sprintf("OneGate: %d router VMs", len(r.sh.VMs)))
	}
	if plan.Reused != "" {
		rep.Details = append(rep.Details, fmt.Sprintf("stored configuration: %s, timestamp %d", plan.Reused, plan.Timestamp))
	}
	rep.Details = append(rep.Details, live.Details...)
	rep.Details = append(rep.Details, fmt.Sprintf("endpoint %s, peer network %s, private network %s (%s)",
		spec.EndpointAddr(), spec.Subnet, spec.Private, spec.In))
	return rep, nil
}

// peer prints peer N's client configuration.
func (s Service) peer(ctx context.Context, rt *cli.Runtime, args []string, flags map[string]bool) error {
	spec, err := FromContext(rt.Env)
	if err != nil {
		return err
	}
	if !spec.Enabled {
		return fmt.Errorf("WireGuard is disabled (%s)", VarEnabled)
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 || n >= spec.Peers || strings.TrimLeft(args[0], "0123456789") != "" {
		return &cli.UsageError{Msg: fmt.Sprintf("peer %q: not a peer number 0-%d (%s=%d)", args[0], spec.Peers-1, VarPeers, spec.Peers)}
	}
	r, err := s.resolve(ctx, rt, spec, true)
	if err != nil {
		return err
	}
	if r.gateErr != nil {
		rt.Log.Warn("OneGate could not be read; using the local copy", "err", r.gateErr)
	}
	c := r.res.Config
	p := c.Peers[n]
	switch {
	case c.New:
		return fmt.Errorf("no usable configuration is stored (%s); run `one-wg start` (rc-service one-wg start) first", r.res.Plan.Reason)
	case p.New:
		return fmt.Errorf("peer %d has no stored keys (a peer added to %s, or its stored configuration is not usable); run `one-wg start` first", n, VarPeers)
	}
	if r.res.Plan.Changed {
		rt.Log.Warn("the stored configuration differs from the context: this is what the next start publishes")
	}
	text := ClientConf(c, p, spec.EndpointAddr(), spec.Private)
	if flags["qr"] {
		return WriteQR(rt.Stdout, string(text))
	}
	_, err = io.WriteString(rt.Stdout, string(text))
	return err
}
