package dhcp4

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/dhcp4/onelease"
	"github.com/hypercx/vrouter/pkg/fsroot"
)

// Service is one-dhcp4v2. Plugins builds a fresh set of plugin instances
// (main hands it onelease.NewSet); Listen opens a NIC's socket (ListenNIC
// when nil).
type Service struct {
	Plugins func(root fsroot.Root, log *slog.Logger) PluginSet
	Listen  Listen
}

// Info describes one-dhcp4v2.
func (Service) Info() cli.Info {
	return cli.Info{
		Name:    "one-dhcp4v2",
		Summary: "DHCP4: DHCP server for the isolated networks behind the router",
		Description: "Serves DHCP on each NIC of ONEAPP_VNF_DHCP4_INTERFACES (management NICs and NICs without an address excepted), " +
			"in-process on coredhcp with the onelease plugin. With MAC2IP on (the default) a MAC with the prefix gets the address " +
			"in its low 4 bytes (a free address of the NIC's pool when that one is outside the pool, excluded or taken) and a MAC " +
			"without the prefix gets no lease; with MAC2IP off every client gets a free address of the pool. A pool address new to " +
			"this server is ARP-probed before it is offered on the link (up to 150 ms); one another host answers for is kept " +
			"out of the pool for 10 minutes. Leases persist in " +
			LeaseDir + " (written before the answer leaves, fsynced within a second) and expire. " +
			"`configure` writes " + ConfigPath + " (checked by coredhcp's config loader first); `start` runs the daemon in the " +
			"foreground (SIGTERM stops it, SIGHUP re-reads that file); `stop` ends a running daemon.",
		Kind:    cli.Daemon,
		Scripts: []string{"one-dhcp4v2"},
		Vars: []cli.Var{
			{Name: VarEnabled, Default: "NO", Help: "enable DHCP4 (YES/NO)"},
			{Name: VarInterfaces, Default: "all NICs", Help: "NICs to serve (management NICs and NICs without ETHx_IP are never served)"},
			{Name: VarAuthoritative, Default: "YES", Help: "NAK requests for addresses this server would not give (YES/NO)"},
			{Name: VarLeaseTime, Default: "3600", Help: "lease time in seconds (60-31536000)"},
			{Name: VarGateway, Default: "the router's EP0 on each NIC", Help: "default gateway(s): IPv4 addresses or <ETHx_IPy>/<ETHx_VIPy>/<ETHx_EPy>"},
			{Name: VarDNS, Default: "the router's EP0 where one-dns serves the NIC, else the context's ETHx_DNS / DNS", Help: "nameserver(s): IPv4 addresses or placeholders"},
			{Name: VarMAC2IP, Default: "YES", Help: "give a MAC with the prefix the address in its low 4 bytes and a MAC without it no lease (YES/NO; NO: every client gets an address of the pool)"},
			{Name: VarMACPrefix, Default: DefaultMACPrefix, Help: "2-byte MAC prefix for MAC2IP"},
			{Name: VarNIC + "<x>", Default: "the NIC's subnet", Help: "pool of ethx: <CIDR>:<start IP>-<end IP> (or <CIDR>, or <start>-<end>)"},
			{Name: VarNIC + "<x>_GATEWAY", Default: VarGateway, Help: "gateway(s) for ethx"},
			{Name: VarNIC + "<x>_DNS", Default: VarDNS, Help: "nameserver(s) for ethx"},
			{Name: VarNIC + "<x>_MTU", Default: "ETHx_MTU, else the link's MTU", Help: "interface-MTU option for ethx (68-65535)"},
			{Name: VarNIC + "<x>_LEASE_TIME", Default: VarLeaseTime, Help: "lease time for ethx in seconds"},
		},
	}
}

func (s Service) plugins(rt *cli.Runtime) (PluginSet, error) {
	if s.Plugins == nil {
		return nil, errors.New("one-dhcp4v2 was built without its plugins")
	}
	return s.Plugins(rt.Root, rt.Log), nil
}

// Configure validates the context and writes onelease-config.yml, checked by
// coredhcp's loader and the plugins before it replaces the live file. A
// disabled service has no configuration: the file is removed.
func (s Service) Configure(ctx context.Context, rt *cli.Runtime) error {
	spec, err := FromContext(ctx, rt.Env)
	if err != nil {
		return err
	}
	if !spec.Enabled {
		rt.Log.Info("DHCP4 is disabled: no configuration", "var", VarEnabled)
		return rt.Root.Remove(ConfigPath)
	}
	_, err = s.writeConfig(rt, spec)
	return err
}

func (s Service) writeConfig(rt *cli.Runtime, spec Spec) (bool, error) {
	for _, sk := range spec.Skipped {
		rt.Log.Warn("NIC not served", "nic", sk.NIC, "reason", sk.Reason)
	}
	if len(spec.Servers) == 0 {
		rt.Log.Warn("no NIC to serve", "var", VarInterfaces)
	}
	ps, err := s.plugins(rt)
	if err != nil {
		return false, err
	}
	data := Render(spec)
	changed, err := rt.Root.WriteChecked(ConfigPath, data, 0o640, func(candidate string) error {
		b, err := os.ReadFile(candidate)
		if err != nil {
			return err
		}
		_, err = LoadConfig(b, ps)
		return err
	})
	if err != nil {
		return false, err
	}
	for _, sv := range spec.Servers {
		rt.Log.Debug("server", "nic", sv.NIC, "pool", sv.Start.String()+"-"+sv.End.String(), "routers", strings.Join(strs(sv.Routers), ","),
			"dns", strings.Join(strs(sv.DNS), ","), "dns_from", sv.DNSFrom)
	}
	rt.Log.Info("configured", "file", ConfigPath, "nics", len(spec.Servers), "changed", changed)
	return changed, nil
}

// state is what the running daemon writes to StatePath.
type state struct {
	PID       int                 `json:"pid"`
	Config    string              `json:"config_sha256"`
	NICs      map[string]NICState `json:"nics"`
	UpdatedAt time.Time           `json:"updated_at"`
}

// Start writes the configuration from the context (as configure does) and
// serves it in the foreground until ctx ends; SIGHUP re-reads the file.
func (s Service) Start(ctx context.Context, rt *cli.Runtime) error {
	spec, err := FromContext(ctx, rt.Env)
	if err != nil {
		return err
	}
	if !spec.Enabled {
		return fmt.Errorf("DHCP4 is disabled (%s is not YES): nothing to serve", VarEnabled)
	}
	if _, err := s.writeConfig(rt, spec); err != nil {
		return err
	}
	unlock, err := lock(rt.Root)
	if err != nil {
		return err
	}
	defer unlock()

	reload, stopHangups := cli.Hangups(func() { rt.Log.Info("SIGHUP: re-reading the configuration", "file", ConfigPath) })
	defer stopHangups()

	var mu sync.Mutex
	st := state{PID: os.Getpid(), NICs: map[string]NICState{}}
	writeState := func() {
		st.UpdatedAt = time.Now().UTC()
		b, _ := json.MarshalIndent(st, "", "  ")
		if _, err := rt.Root.WriteFile(StatePath, append(b, '\n'), 0o644); err != nil {
			rt.Log.Warn("writing state file", "err", err)
		}
	}
	defer func() { _ = rt.Root.Remove(StatePath) }()
	load := func() (cfgs []NICConfig, err error) {
		// status shows a configuration the daemon could not take on a
		// reload (SIGHUP) until one is taken.
		defer func() { rt.RecordError("reload", err) }()
		data, err := rt.Root.ReadFile(ConfigPath)
		if err != nil {
			return nil, fmt.Errorf("reading configuration: %w", err)
		}
		ps, err := s.plugins(rt)
		if err != nil {
			return nil, err
		}
		cfgs, err = LoadConfig(data, ps)
		if err != nil {
			return nil, fmt.Errorf("loading %s: %w", ConfigPath, err)
		}
		mu.Lock()
		st.Config = digest(data)
		writeState()
		mu.Unlock()
		return cfgs, nil
	}
	listen := s.Listen
	if listen == nil {
		listen = ListenNIC
	}
	d := &Daemon{
		Log:    rt.Log,
		Listen: listen,
		NewPlugins: func() PluginSet {
			ps, _ := s.plugins(rt)
			return ps
		},
		OnState: func(m map[string]NICState) {
			mu.Lock()
			defer mu.Unlock()
			st.NICs = m
			writeState()
		},
	}
	rt.Log.Info("starting", "pid", os.Getpid(), "nics", len(spec.Servers))
	return d.Run(ctx, load, reload)
}

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// lock takes LockPath so that a second daemon (sharing the lease files)
// fails at once instead of fighting over them.
func lock(root fsroot.Root) (func(), error) {
	if err := root.MkdirAll("/run", 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(root.Path(LockPath), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another one-dhcp4v2 is running (%s is locked)", root.Path(LockPath))
	}
	return func() { f.Close() }, nil
}

func readState(root fsroot.Root) (state, bool) {
	var st state
	b, err := root.ReadFile(StatePath)
	if err != nil || json.Unmarshal(b, &st) != nil || st.PID <= 0 {
		return st, false
	}
	return st, true
}

// running reports whether pid is a live one-dhcp4v2 process.
func running(pid int) bool {
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return err == nil && strings.TrimSpace(string(comm)) == "one-dhcp4v2"
}

// Stop ends the running daemon (SIGTERM, then waits); fine when none runs.
// Under OpenRC use `rc-service one-dhcp4v2 stop`: its supervisor would
// restart a daemon stopped behind its back.
func (Service) Stop(ctx context.Context, rt *cli.Runtime) error {
	st, ok := readState(rt.Root)
	if !ok || !running(st.PID) {
		rt.Log.Info("not running")
		return nil
	}
	if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping one-dhcp4v2 (pid %d): %w", st.PID, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for running(st.PID) {
		if time.Now().After(deadline) {
			return fmt.Errorf("one-dhcp4v2 (pid %d) did not stop within 10s", st.PID)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	rt.Log.Info("stopped", "pid", st.PID)
	return nil
}

// Render prints onelease-config.yml.
func (Service) Render(ctx context.Context, rt *cli.Runtime) ([]cli.Artefact, error) {
	spec, err := FromContext(ctx, rt.Env)
	if err != nil {
		return nil, err
	}
	if !spec.Enabled {
		rt.Log.Info("DHCP4 is disabled: nothing to serve", "var", VarEnabled)
		return nil, nil
	}
	for _, sk := range spec.Skipped {
		rt.Log.Warn("NIC not served", "nic", sk.NIC, "reason", sk.Reason)
	}
	return []cli.Artefact{{Target: ConfigPath, Body: Render(spec)}}, nil
}

// Status compares the configuration file and the running daemon with the context.
func (Service) Status(ctx context.Context, rt *cli.Runtime) (cli.Report, error) {
	spec, err := FromContext(ctx, rt.Env)
	if err != nil {
		return cli.Report{}, err
	}
	st, ok := readState(rt.Root)
	alive := ok && running(st.PID)
	rep := cli.Report{Enabled: spec.Enabled, Applied: alive}
	if !spec.Enabled {
		if alive {
			rep.Drift = append(rep.Drift, fmt.Sprintf("DHCP4 is disabled but one-dhcp4v2 is running (pid %d)", st.PID))
		}
		return rep, nil
	}
	want := Render(spec)
	live, err := rt.Root.ReadFile(ConfigPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rep.Drift = append(rep.Drift, ConfigPath+" is missing (run configure)")
	case err != nil:
		return rep, err
	case string(live) != string(want):
		rep.Drift = append(rep.Drift, ConfigPath+" differs from the context (run configure, then reload)")
	}
	if !alive {
		rep.Drift = append(rep.Drift, "one-dhcp4v2 is not running")
	} else if st.Config != digest(want) {
		rep.Drift = append(rep.Drift, "the running daemon serves an older configuration (reload)")
	}
	now := time.Now()
	for _, sv := range spec.Servers {
		if alive {
			switch ns, ok := st.NICs[sv.NIC]; {
			case !ok:
				rep.Drift = append(rep.Drift, sv.NIC+": not served")
			case !ns.Listening:
				rep.Drift = append(rep.Drift, sv.NIC+": not serving: "+ns.Error)
			}
		}
		leases := "unknown"
		if n, err := onelease.CountActive(rt.Root.Path(sv.LeaseFile), now); err == nil {
			leases = strconv.Itoa(n)
		}
		mtu := "the link's"
		if sv.MTU > 0 {
			mtu = strconv.Itoa(sv.MTU)
		}
		rep.Details = append(rep.Details, fmt.Sprintf("%s: pool %s-%s (%d excluded), router %s, DNS %s (%s), MTU %s, lease %s, active leases %s",
			sv.NIC, sv.Start, sv.End, len(sv.Excluded), cli.List(strs(sv.Routers)), cli.List(strs(sv.DNS)), sv.DNSFrom, mtu, sv.LeaseTime, leases))
	}
	for _, sk := range spec.Skipped {
		rep.Details = append(rep.Details, fmt.Sprintf("%s: not served (%s)", sk.NIC, sk.Reason))
	}
	return rep, nil
}
