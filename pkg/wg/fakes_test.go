package wg

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/sysctl"
)

// linkNotFound is a real netlink.LinkNotFoundError (its zero value cannot
// print itself), from asking the kernel for a link no one has.
var linkNotFound = func() error {
	_, err := netlink.LinkByName("wgfake-none0")
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nf
	}
	return netlink.LinkNotFoundError{}
}()

// fakeLink is a link of the fake kernel.
type fakeLink struct {
	kind  string // "wireguard", "tuntap", "veth"
	up    bool
	addrs []netlink.Addr
}

// fakeSystem is a stateful kernel (links, addresses, forwarding sysctls),
// wgctrl and wireguard-go: WireGuard devices exist while their link does (a
// tuntap one only while its wireguard-go runs), and wireguard-go removes its
// TUN device when it ends, as the real one does.
type fakeSystem struct {
	kernelWG bool // the kernel has WireGuard
	links    map[string]*fakeLink
	devs     map[string]*wgtypes.Device
	procs    map[int]string // running wireguard-go: pid → device
	nextPID  int
	sc       *sysctl.Fake
	// vanishing: links of a killed wireguard-go that the kernel has not
	// removed yet; they are gone by the time they are deleted.
	vanishing map[string]bool
	// counters
	configures, starts int
	failStart          error
}

func newFakeSystem(kernelWG bool) *fakeSystem {
	return &fakeSystem{
		kernelWG: kernelWG, links: map[string]*fakeLink{}, devs: map[string]*wgtypes.Device{},
		procs: map[int]string{}, nextPID: 1000, sc: sysctl.NewFake(nil), vanishing: map[string]bool{},
	}
}

// system returns the seams over the fake, with root for the runtime files.
func (f *fakeSystem) system(root fsroot.Root) *System {
	return &System{Links: f, Devices: f, Userspace: f, Sysctl: f.sc, Root: root, Log: slog.New(slog.DiscardHandler)}
}

func (f *fakeSystem) addLink(name, kind string) {
	f.links[name] = &fakeLink{kind: kind}
	f.sc.Values[ForwardingKey(name)] = "0"
}

func (f *fakeSystem) delLink(name string) {
	delete(f.links, name)
	delete(f.devs, name)
	delete(f.sc.Values, ForwardingKey(name))
}

func (f *fakeSystem) linkObj(name string) netlink.Link {
	l := f.links[name]
	attrs := netlink.LinkAttrs{Name: name}
	if l.up {
		attrs.Flags = net.FlagUp
	}
	switch l.kind {
	case linkKernel:
		return &netlink.Wireguard{LinkAttrs: attrs}
	case linkTun:
		return &netlink.Tuntap{LinkAttrs: attrs}
	}
	return &netlink.Veth{LinkAttrs: attrs}
}

func (f *fakeSystem) LinkByName(name string) (netlink.Link, error) {
	if _, ok := f.links[name]; !ok {
		return nil, linkNotFound
	}
	return f.linkObj(name), nil
}

func (f *fakeSystem) LinkAdd(link netlink.Link) error {
	name := link.Attrs().Name
	if _, ok := f.links[name]; ok {
		return unix.EEXIST
	}
	if link.Type() == linkKernel {
		if !f.kernelWG {
			return fmt.Errorf("link add: %w", unix.EOPNOTSUPP)
		}
		f.addLink(name, linkKernel)
		f.devs[name] = &wgtypes.Device{Name: name, Type: wgtypes.LinuxKernel}
		return nil
	}
	f.addLink(name, link.Type())
	return nil
}

func (f *fakeSystem) LinkDel(link netlink.Link) error {
	name := link.Attrs().Name
	if _, ok := f.links[name]; !ok || f.vanishing[name] {
		// The kernel answers a deletion of a link that is gone with
		// ENODEV, not a LinkNotFoundError.
		f.delLink(name)
		delete(f.vanishing, name)
		return unix.ENODEV
	}
	f.delLink(name)
	return nil
}

func (f *fakeSystem) LinkSetUp(link netlink.Link) error {
	l, ok := f.links[link.Attrs().Name]
	if !ok {
		return linkNotFound
	}
	l.up = true
	return nil
}

func (f *fakeSystem) AddrList(link netlink.Link, _ int) ([]netlink.Addr, error) {
	l, ok := f.links[link.Attrs().Name]
	if !ok {
		return nil, linkNotFound
	}
	return append([]netlink.Addr{}, l.addrs...), nil
}

func (f *fakeSystem) AddrReplace(link netlink.Link, a *netlink.Addr) error {
	l, ok := f.links[link.Attrs().Name]
	if !ok {
		return linkNotFound
	}
	for i, x := range l.addrs {
		if x.IP.Equal(a.IP) {
			l.addrs[i] = *a
			return nil
		}
	}
	l.addrs = append(l.addrs, *a)
	return nil
}

func (f *fakeSystem) AddrDel(link netlink.Link, a *netlink.Addr) error {
	l, ok := f.links[link.Attrs().Name]
	if !ok {
		return linkNotFound
	}
	for i, x := range l.addrs {
		if x.IP.Equal(a.IP) {
			l.addrs = append(l.addrs[:i], l.addrs[i+1:]...)
			return nil
		}
	}
	return unix.EADDRNOTAVAIL
}

func (f *fakeSystem) Device(name string) (*wgtypes.Device, error) {
	d, ok := f.devs[name]
	if !ok {
		return nil, os.ErrNotExist
	}
	c := *d
	c.Peers = append([]wgtypes.Peer{}, d.Peers...)
	return &c, nil
}

// ConfigureDevice applies cfg with wgctrl's semantics.
func (f *fakeSystem) ConfigureDevice(name string, cfg wgtypes.Config) error {
	d, ok := f.devs[name]
	if !ok {
		return os.ErrNotExist
	}
	f.configures++
	if cfg.PrivateKey != nil {
		d.PrivateKey, d.PublicKey = *cfg.PrivateKey, cfg.PrivateKey.PublicKey()
	}
	if cfg.ListenPort != nil {
		d.ListenPort = *cfg.ListenPort
	}
	if cfg.ReplacePeers {
		d.Peers = nil
	}
	for _, pc := range cfg.Peers {
		i := -1
		for j, p := range d.Peers {
			if p.PublicKey == pc.PublicKey {
				i = j
			}
		}
		switch {
		case pc.Remove:
			if i >= 0 {
				d.Peers = append(d.Peers[:i], d.Peers[i+1:]...)
			}
			continue
		case i < 0 && pc.UpdateOnly:
			continue
		case i < 0:
			d.Peers = append(d.Peers, wgtypes.Peer{PublicKey: pc.PublicKey})
			i = len(d.Peers) - 1
		}
		p := &d.Peers[i]
		if pc.PresharedKey != nil {
			p.PresharedKey = *pc.PresharedKey
		}
		if pc.ReplaceAllowedIPs {
			p.AllowedIPs = nil
		}
		p.AllowedIPs = append(p.AllowedIPs, pc.AllowedIPs...)
	}
	return nil
}

func (f *fakeSystem) Start(_ context.Context, dev string) (int, error) {
	if f.failStart != nil {
		return 0, f.failStart
	}
	f.starts++
	f.nextPID++
	f.procs[f.nextPID] = dev
	f.addLink(dev, linkTun)
	f.devs[dev] = &wgtypes.Device{Name: dev, Type: wgtypes.Userspace}
	return f.nextPID, nil
}

func (f *fakeSystem) Alive(pid int) bool { _, ok := f.procs[pid]; return ok }

func (f *fakeSystem) Stop(_ context.Context, pid int, _ string) error {
	if dev, ok := f.procs[pid]; ok {
		delete(f.procs, pid)
		f.delLink(dev)
	}
	return nil
}

// crash kills wireguard-go: its TUN device goes with it.
func (f *fakeSystem) crash(pid int) { _ = f.Stop(context.Background(), pid, "") }

// kill kills wireguard-go a moment before the kernel removes its TUN
// device: the link is still listed, and gone when deleted.
func (f *fakeSystem) kill(pid int) {
	dev := f.procs[pid]
	delete(f.procs, pid)
	delete(f.devs, dev)
	f.vanishing[dev] = true
}

// linkNames lists the links, sorted.
func (f *fakeSystem) linkNames() []string {
	var out []string
	for n := range f.links {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// seqKeys generates deterministic keys: the nth key is derived from n.
type seqKeys struct{ n int }

func (s *seqKeys) next() wgtypes.Key {
	s.n++
	sum := sha256.Sum256([]byte(fmt.Sprint("key", s.n)))
	k, _ := wgtypes.NewKey(sum[:])
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k
}

func (s *seqKeys) PrivateKey() (Secret, error)   { return Secret{s.next()}, nil }
func (s *seqKeys) PresharedKey() (Secret, error) { return Secret{s.next()}, nil }

// must fails the test on error.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
