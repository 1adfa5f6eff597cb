package wg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/sysctl"
)

// Links is what one-wg needs of netlink (vishvananda/netlink's Handle
// methods).
type Links interface {
	LinkByName(name string) (netlink.Link, error)
	LinkAdd(link netlink.Link) error
	LinkDel(link netlink.Link) error
	LinkSetUp(link netlink.Link) error
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	AddrReplace(link netlink.Link, addr *netlink.Addr) error
	AddrDel(link netlink.Link, addr *netlink.Addr) error
}

// Devices is what one-wg needs of wgctrl (wgctrl.Client's methods).
type Devices interface {
	Device(name string) (*wgtypes.Device, error)
	ConfigureDevice(name string, cfg wgtypes.Config) error
}

// Userspace runs wireguard-go, the WireGuard of a kernel without it.
type Userspace interface {
	// Start runs wireguard-go for dev, detached from one-wg, and returns
	// its PID once its configuration socket answers.
	Start(ctx context.Context, dev string) (int, error)
	// Alive reports whether pid is a running wireguard-go.
	Alive(pid int) bool
	// Stop ends wireguard-go pid (SIGTERM, then SIGKILL) and removes dev's
	// configuration socket if it is left behind.
	Stop(ctx context.Context, pid int, dev string) error
}

// Runtime files: which device this router applied and the wireguard-go
// serving it, so stop removes them whatever the context says by then, and
// the OpenRC script can tell when wireguard-go died.
const (
	RunDir      = "/run/one-wg"
	DeviceFile  = RunDir + "/device"
	PIDFile     = RunDir + "/wireguard-go.pid"
	linkKernel  = "wireguard"
	linkTun     = "tuntap"
	modeKernel  = "kernel"
	modeUserGo  = "wireguard-go"
	handshakeOK = 3 * time.Minute
)

// System is the seams apply works through.
type System struct {
	Links     Links
	Devices   Devices
	Userspace Userspace
	Sysctl    sysctl.Interface
	Root      fsroot.Root
	Log       *slog.Logger
	Now       func() time.Time
}

// Result says what Apply did.
type Result struct {
	Mode    string // "kernel" or "wireguard-go"
	PID     int    // wireguard-go's
	Created bool   // the device was made
	Changes []string
}

// notFound reports a link that is not there: looked up by name, or gone by
// the time it is deleted (ENODEV: a killed wireguard-go's TUN device
// vanishes as the kernel closes its file).
func notFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// pid reads the recorded wireguard-go PID (0 when none).
func (s *System) pid() int {
	b, err := s.Root.ReadFile(PIDFile)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// Apply converges the device to d: it makes the device when it is missing
// (in the kernel, else with wireguard-go), sets the keys, port and peers
// that differ through wgctrl, the address, the link up and forwarding. It
// is safe to call any number of times; peers that are already right keep
// their sessions.
func (s *System) Apply(ctx context.Context, d Desired) (res Result, err error) {
	if err := s.Root.MkdirAll(RunDir, 0o755); err != nil {
		return res, fmt.Errorf("creating %s: %w", RunDir, err)
	}
	var moved []string
	if b, err := s.Root.ReadFile(DeviceFile); err == nil {
		// The context renamed the device: the old one goes first.
		if old := strings.TrimSpace(string(b)); old != "" && old != d.Device {
			done, err := s.Teardown(ctx, old)
			if err != nil {
				return res, fmt.Errorf("removing the previous device %s: %w", old, err)
			}
			moved = done
		}
	}
	defer func() { res.Changes = append(moved, res.Changes...) }()
	link, err := s.Links.LinkByName(d.Device)
	switch {
	case err == nil:
		switch link.Type() {
		case linkKernel:
			res.Mode = modeKernel
		case linkTun:
			pid := s.pid()
			if _, derr := s.Devices.Device(d.Device); pid > 0 && s.Userspace.Alive(pid) && derr == nil {
				res.Mode, res.PID = modeUserGo, pid
				break
			}
			// A TUN device left by a wireguard-go that died: its
			// sessions are gone anyway, so start over.
			s.Log.Warn("wireguard-go of the device is gone; starting it again", "device", d.Device)
			if pid > 0 {
				_ = s.Userspace.Stop(ctx, pid, d.Device)
			}
			if err := s.Links.LinkDel(link); err != nil && !notFound(err) {
				return res, fmt.Errorf("removing the stale device %s: %w", d.Device, err)
			}
			link = nil
		default:
			return res, fmt.Errorf("device %s exists and is a %s link, not WireGuard: set %s to another name", d.Device, link.Type(), VarDevice)
		}
	case notFound(err):
	default:
		return res, fmt.Errorf("looking up device %s: %w", d.Device, err)
	}
	if link == nil {
		if res, err = s.create(ctx, d.Device); err != nil {
			return res, err
		}
		if link, err = s.Links.LinkByName(d.Device); err != nil {
			return res, fmt.Errorf("looking up the new device %s: %w", d.Device, err)
		}
	}
	if _, err := s.Root.WriteFile(DeviceFile, []byte(d.Device+"\n"), 0o644); err != nil {
		return res, fmt.Errorf("recording the device: %w", err)
	}
	live, err := s.Devices.Device(d.Device)
	if err != nil {
		return res, fmt.Errorf("reading device %s through wgctrl: %w", d.Device, err)
	}
	cfg, changes := d.Changes(live)
	if len(changes) > 0 {
		if err := s.Devices.ConfigureDevice(d.Device, cfg); err != nil {
			return res, fmt.Errorf("configuring device %s (%d changes): %w", d.Device, len(changes), err)
		}
		res.Changes = append(res.Changes, changes...)
	}
	addrChanges, err := s.converge(link, d.Addr)
	if err != nil {
		return res, err
	}
	res.Changes = append(res.Changes, addrChanges...)
	if link.Attrs().Flags&net.FlagUp == 0 || res.Created {
		if err := s.Links.LinkSetUp(link); err != nil {
			return res, fmt.Errorf("setting device %s up: %w", d.Device, err)
		}
		res.Changes = append(res.Changes, "link up")
	}
	for k, v := range d.Sysctl {
		cur, err := s.Sysctl.Get(k)
		if err != nil {
			return res, fmt.Errorf("reading %s: %w", k, err)
		}
		if cur != v {
			if err := s.Sysctl.Set(k, v); err != nil {
				return res, fmt.Errorf("setting %s = %s: %w", k, v, err)
			}
			res.Changes = append(res.Changes, k+" = "+v)
		}
	}
	return res, nil
}

// create makes the device in the kernel, or with wireguard-go when the
// kernel has no WireGuard.
func (s *System) create(ctx context.Context, dev string) (Result, error) {
	res := Result{Created: true}
	err := s.Links.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: dev}})
	if err == nil {
		res.Mode = modeKernel
		return res, nil
	}
	// EOPNOTSUPP: the kernel does not know the "wireguard" link kind
	// (no module); the userspace implementation takes over.
	if !errors.Is(err, unix.EOPNOTSUPP) {
		return res, fmt.Errorf("creating device %s: %w", dev, err)
	}
	pid, err := s.Userspace.Start(ctx, dev)
	if err != nil {
		return res, fmt.Errorf("the kernel has no WireGuard; starting wireguard-go for %s: %w", dev, err)
	}
	if _, err := s.Root.WriteFile(PIDFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = s.Userspace.Stop(ctx, pid, dev)
		return res, fmt.Errorf("recording wireguard-go's PID: %w", err)
	}
	res.Mode, res.PID = modeUserGo, pid
	return res, nil
}

// converge puts exactly want on the link (IPv4).
func (s *System) converge(link netlink.Link, want netip.Prefix) ([]string, error) {
	dev := link.Attrs().Name
	addrs, err := s.Links.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("listing the addresses of %s: %w", dev, err)
	}
	var changes []string
	have := false
	for _, a := range addrs {
		p, ok := prefixOf(a)
		if ok && p == want {
			have = true
			continue
		}
		a := a
		if err := s.Links.AddrDel(link, &a); err != nil {
			return changes, fmt.Errorf("removing %s from %s: %w", a.IPNet, dev, err)
		}
		changes = append(changes, "address "+a.IPNet.String()+" removed")
	}
	if !have {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(want.Addr().AsSlice()), Mask: net.CIDRMask(want.Bits(), 32)}}
		if err := s.Links.AddrReplace(link, a); err != nil {
			return changes, fmt.Errorf("adding %s to %s: %w", want, dev, err)
		}
		changes = append(changes, "address "+want.String())
	}
	return changes, nil
}

func prefixOf(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

// Teardown removes the device this router applied (recorded at apply) and
// the one the context names, and stops wireguard-go. Links that are not
// WireGuard devices are left alone. Fine on a system where nothing was
// applied.
func (s *System) Teardown(ctx context.Context, dev string) ([]string, error) {
	var done []string
	var errs []error
	devs := []string{}
	recorded := ""
	if b, err := s.Root.ReadFile(DeviceFile); err == nil {
		if recorded = strings.TrimSpace(string(b)); recorded != "" {
			devs = append(devs, recorded)
		}
	}
	if dev != "" && dev != recorded {
		devs = append(devs, dev)
	}
	if len(devs) == 0 {
		devs = append(devs, DefaultDevice)
	}
	if pid := s.pid(); pid > 0 {
		// wireguard-go removes its TUN device as it exits. A killed one
		// leaves its socket, which Stop removes too.
		alive := s.Userspace.Alive(pid)
		switch err := s.Userspace.Stop(ctx, pid, devs[0]); {
		case err != nil:
			errs = append(errs, fmt.Errorf("stopping wireguard-go: %w", err))
		case alive:
			done = append(done, "wireguard-go stopped (pid "+strconv.Itoa(pid)+")")
		}
	}
	for _, name := range devs {
		link, err := s.Links.LinkByName(name)
		if notFound(err) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("looking up device %s: %w", name, err))
			continue
		}
		switch link.Type() {
		case linkKernel:
		case linkTun:
			// A TUN device is ours when WireGuard answers on it, or when
			// it is the device this router applied (its wireguard-go
			// died); anyone else's TUN device is left alone.
			if _, err := s.Devices.Device(name); err != nil && name != recorded {
				s.Log.Warn("a TUN device that is not WireGuard has the device's name; left alone", "device", name)
				continue
			}
		default:
			s.Log.Warn("a link that is not WireGuard has the device's name; left alone", "device", name, "type", link.Type())
			continue
		}
		if err := s.Links.LinkDel(link); err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("removing device %s: %w", name, err))
			continue
		}
		done = append(done, "device "+name+" removed")
	}
	if len(errs) == 0 {
		_ = s.Root.Remove(PIDFile)
		_ = s.Root.Remove(DeviceFile)
	}
	return done, errors.Join(errs...)
}

// Live is what Inspect found.
type Live struct {
	Exists  bool
	Mode    string
	Drift   []string
	Details []string
}

// Inspect compares the live device with d.
func (s *System) Inspect(ctx context.Context, d Desired) (Live, error) {
	var l Live
	link, err := s.Links.LinkByName(d.Device)
	switch {
	case notFound(err):
		l.Drift = append(l.Drift, "device "+d.Device+" does not exist")
		return l, nil
	case err != nil:
		return l, fmt.Errorf("looking up device %s: %w", d.Device, err)
	}
	l.Exists = true
	switch link.Type() {
	case linkKernel:
		l.Mode = modeKernel
	case linkTun:
		l.Mode = modeUserGo
		if pid := s.pid(); pid > 0 && s.Userspace.Alive(pid) {
			l.Details = append(l.Details, fmt.Sprintf("wireguard-go: running (pid %d)", pid))
		} else {
			// Its TUN device outlives it for a moment after a kill; a
			// wgctrl question to the dead socket would only add noise.
			l.Drift = append(l.Drift, "wireguard-go of "+d.Device+" is not running")
			return l, nil
		}
	default:
		l.Drift = append(l.Drift, fmt.Sprintf("device %s is a %s link, not WireGuard", d.Device, link.Type()))
		return l, nil
	}
	live, err := s.Devices.Device(d.Device)
	if err != nil {
		l.Drift = append(l.Drift, fmt.Sprintf("device %s does not answer wgctrl: %v", d.Device, err))
		return l, nil
	}
	if _, changes := d.Changes(live); len(changes) > 0 {
		for _, c := range changes {
			l.Drift = append(l.Drift, "wanted: "+c)
		}
	}
	addrs, err := s.Links.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return l, fmt.Errorf("listing the addresses of %s: %w", d.Device, err)
	}
	has := false
	for _, a := range addrs {
		if p, ok := prefixOf(a); ok && p == d.Addr {
			has = true
		}
	}
	if !has {
		l.Drift = append(l.Drift, fmt.Sprintf("device %s lacks address %s", d.Device, d.Addr))
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		l.Drift = append(l.Drift, "device "+d.Device+" is down")
	}
	for k, v := range d.Sysctl {
		if cur, err := s.Sysctl.Get(k); err != nil || cur != v {
			l.Drift = append(l.Drift, fmt.Sprintf("%s is %q, want %s", k, cur, v))
		}
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	recent := 0
	for _, p := range live.Peers {
		if !p.LastHandshakeTime.IsZero() && now().Sub(p.LastHandshakeTime) < handshakeOK {
			recent++
		}
	}
	l.Details = append(l.Details, fmt.Sprintf("device: %s (%s), listening on %d, %d peers, %d with a handshake in the last %s",
		d.Device, l.Mode, live.ListenPort, len(live.Peers), recent, handshakeOK))
	return l, nil
}
