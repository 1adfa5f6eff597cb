// Package ifaddrtest is a stateful fake of the netlink address calls of
// package ifaddr: links with IPv4 addresses and labels, EEXIST for an
// address that is already there, EADDRNOTAVAIL for deleting one that is not,
// and counters of reads and writes.
package ifaddrtest

import (
	"fmt"
	"net"
	"sort"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
)

// Netlink is the fake. Build it with New.
type Netlink struct {
	mu    sync.Mutex
	links map[string]*link
	// Writes counts address additions and deletions that changed
	// something; Reads counts dumps.
	Writes, Reads int
	// FailAdd, when set, makes every AddrAdd fail with it.
	FailAdd error
}

type link struct {
	attrs netlink.LinkAttrs
	addrs []netlink.Addr
}

// New returns a fake with lo (index 1, 127.0.0.1/8 labelled lo).
func New() *Netlink {
	f := &Netlink{links: map[string]*link{}}
	f.AddLink("lo")
	_ = f.Assign("lo", "127.0.0.1/8", "lo")
	return f
}

// AddLink adds a link with no address.
func (f *Netlink) AddLink(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links[name] = &link{attrs: netlink.LinkAttrs{Name: name, Index: len(f.links) + 1}}
}

// Assign puts an address on a link behind the code's back (a canary, or
// someone else's address); it is not counted as a write.
func (f *Netlink) Assign(dev, cidr, label string) error {
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return err
	}
	n.IP = ip
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.links[dev]
	if !ok {
		return fmt.Errorf("no link %s", dev)
	}
	l.addrs = append(l.addrs, netlink.Addr{IPNet: n, Label: label})
	return nil
}

// Addrs returns "<cidr> <label>" for every address of dev, sorted.
func (f *Netlink) Addrs(dev string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	if l, ok := f.links[dev]; ok {
		for _, a := range l.addrs {
			out = append(out, a.IPNet.String()+" "+a.Label)
		}
	}
	sort.Strings(out)
	return out
}

type fakeLink struct{ attrs netlink.LinkAttrs }

func (l *fakeLink) Attrs() *netlink.LinkAttrs { return &l.attrs }
func (l *fakeLink) Type() string              { return "fake" }

// LinkByName finds a link.
func (f *Netlink) LinkByName(name string) (netlink.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.links[name]
	if !ok {
		return nil, netlink.LinkNotFoundError{}
	}
	return &fakeLink{attrs: l.attrs}, nil
}

func (f *Netlink) find(lk netlink.Link) (*link, error) {
	if lk == nil {
		return nil, syscall.ENODEV
	}
	l, ok := f.links[lk.Attrs().Name]
	if !ok {
		return nil, syscall.ENODEV
	}
	return l, nil
}

// AddrList dumps the link's addresses of family (IPv4 only here).
func (f *Netlink) AddrList(lk netlink.Link, family int) ([]netlink.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Reads++
	l, err := f.find(lk)
	if err != nil {
		return nil, err
	}
	out := make([]netlink.Addr, len(l.addrs))
	copy(out, l.addrs)
	return out, nil
}

func same(a, b *net.IPNet) bool {
	as, _ := a.Mask.Size()
	bs, _ := b.Mask.Size()
	return a.IP.Equal(b.IP) && as == bs
}

// AddrAdd adds an address; EEXIST when the same address and prefix length
// is already on the link (whatever its label), as the kernel answers.
func (f *Netlink) AddrAdd(lk netlink.Link, a *netlink.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.FailAdd != nil {
		return f.FailAdd
	}
	l, err := f.find(lk)
	if err != nil {
		return err
	}
	if len(a.Label) > 15 {
		return syscall.EINVAL
	}
	for _, x := range l.addrs {
		if same(x.IPNet, a.IPNet) {
			return syscall.EEXIST
		}
	}
	label := a.Label
	if label == "" {
		label = l.attrs.Name
	}
	n := *a.IPNet
	l.addrs = append(l.addrs, netlink.Addr{IPNet: &n, Label: label})
	f.Writes++
	return nil
}

// AddrDel deletes an address; with a label, only an address carrying that
// label matches (as the kernel does); EADDRNOTAVAIL when none matches.
func (f *Netlink) AddrDel(lk netlink.Link, a *netlink.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, err := f.find(lk)
	if err != nil {
		return err
	}
	for i, x := range l.addrs {
		if same(x.IPNet, a.IPNet) && (a.Label == "" || a.Label == x.Label) {
			l.addrs = append(l.addrs[:i:i], l.addrs[i+1:]...)
			f.Writes++
			return nil
		}
	}
	return syscall.EADDRNOTAVAIL
}
