package failover

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/keepalived"
)

// Observer looks at the machine: keepalived's VRRP process and the VIPs of
// the instances.
type Observer interface {
	Observe(instances []keepalived.VRRPInstance) Observation
}

// AddrLister lists the IPv4 addresses of a NIC (netlink on the router).
type AddrLister interface {
	Addrs(dev string) ([]netip.Addr, error)
}

// Netlink lists addresses through netlink.
type Netlink struct{}

// Addrs returns dev's IPv4 addresses.
func (Netlink) Addrs(dev string) ([]netip.Addr, error) {
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", dev, err)
	}
	list, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("listing addresses of %s: %w", dev, err)
	}
	out := make([]netip.Addr, 0, len(list))
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
			out = append(out, ip)
		}
	}
	return out, nil
}

// System is the real observer: keepalived's VRRP pid file (checked against
// /proc, so a stale file after a crash reads as not running) and the NICs.
type System struct {
	Root  fsroot.Root
	Addrs AddrLister
}

// Observe looks at keepalived and the VIPs.
func (s System) Observe(instances []keepalived.VRRPInstance) Observation {
	o := Observation{KeepalivedPID: keepalivedPID(s.Root), VIPs: map[string]Presence{}}
	cache := map[string]map[netip.Addr]bool{}
	for _, in := range instances {
		if len(in.VIPs) == 0 {
			continue
		}
		n := 0
		for _, v := range in.VIPs {
			have, ok := cache[v.Dev]
			if !ok {
				have = map[netip.Addr]bool{}
				addrs, _ := s.Addrs.Addrs(v.Dev) // a missing NIC holds no VIP
				for _, a := range addrs {
					have[a] = true
				}
				cache[v.Dev] = have
			}
			if have[v.Prefix.Addr()] {
				n++
			}
		}
		switch n {
		case 0:
			o.VIPs[in.Name] = NoVIPs
		case len(in.VIPs):
			o.VIPs[in.Name] = AllVIPs
		default:
			o.VIPs[in.Name] = SomeVIPs
		}
	}
	return o
}

// keepalivedPID is the pid of keepalived's running VRRP process, 0 if none.
func keepalivedPID(root fsroot.Root) int {
	b, err := root.ReadFile(keepalived.VRRPPidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	comm, err := os.ReadFile(root.Path("/proc/" + strconv.Itoa(pid) + "/comm"))
	if err != nil || strings.TrimSpace(string(comm)) != "keepalived" {
		return 0
	}
	// A process killed a moment ago may linger as a zombie.
	if st, err := os.ReadFile(root.Path("/proc/" + strconv.Itoa(pid) + "/stat")); err == nil {
		if f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return 0
		}
	}
	return pid
}

// Release removes the VIPs that are on their NICs and reports how many it
// removed; a VIP or a NIC that is not there is no error.
func (Netlink) Release(vips []keepalived.VIP) (int, error) {
	var errs []error
	n := 0
	for _, v := range vips {
		link, err := netlink.LinkByName(v.Dev)
		if err != nil {
			continue
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: v.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(v.Prefix.Bits(), 32)}}
		switch err := netlink.AddrDel(link, addr); {
		case err == nil:
			n++
		case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ESRCH):
		default:
			errs = append(errs, fmt.Errorf("removing %s from %s: %w", v.Prefix, v.Dev, err))
		}
	}
	return n, errors.Join(errs...)
}

// Exits returns a channel closed when process pid exits, watched through a
// pidfd (nil when the kernel cannot give one).
func Exits(pid int) <-chan struct{} {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil
	}
	c := make(chan struct{})
	go func() {
		defer close(c)
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err != unix.EINTR {
				return
			}
		}
	}()
	return c
}
