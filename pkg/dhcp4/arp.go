package dhcp4

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// arpProber probes addresses on one NIC: ARP requests out of a packet
// socket, and one reader that hands each ARP packet's sender to whoever
// waits for that address.
type arpProber struct {
	ifindex int
	hw      net.HardwareAddr

	once    sync.Once
	openErr error
	f       *os.File // the packet socket (non-blocking, in Go's poller)

	mu      sync.Mutex
	waiting map[[4]byte][]chan net.HardwareAddr
}

func (a *arpProber) open() error {
	a.once.Do(func() {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			a.openErr = fmt.Errorf("opening an ARP socket: %w", err)
			return
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: a.ifindex}); err != nil {
			unix.Close(fd)
			a.openErr = fmt.Errorf("binding the ARP socket: %w", err)
			return
		}
		a.f = os.NewFile(uintptr(fd), "arp")
		a.waiting = map[[4]byte][]chan net.HardwareAddr{}
		go a.read()
	})
	return a.openErr
}

// read passes the sender of every ARP packet (request or reply) to the
// probes waiting for its address, until the socket is closed.
func (a *arpProber) read() {
	buf := make([]byte, 1500)
	for {
		n, err := a.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			// The link went down or away: no spinning until the NIC's
			// server is restarted and closes the socket.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		// Ethernet/IPv4 ARP: htype 1, ptype 0x0800, hlen 6, plen 4.
		if n < 28 || buf[0] != 0 || buf[1] != 1 || buf[2] != 8 || buf[3] != 0 || buf[4] != 6 || buf[5] != 4 {
			continue
		}
		var spa [4]byte
		copy(spa[:], buf[14:18])
		if spa == [4]byte{} {
			continue // another host's probe, not a holder
		}
		sha := net.HardwareAddr(append([]byte(nil), buf[8:14]...))
		a.mu.Lock()
		for _, c := range a.waiting[spa] {
			select {
			case c <- sha:
			default:
			}
		}
		a.mu.Unlock()
	}
}

// Probe sends an RFC 5227 probe (sender address 0.0.0.0, so no neighbour
// caches it) for ip and returns who answers within wait.
func (a *arpProber) Probe(ctx context.Context, ip net.IP, wait time.Duration) (net.HardwareAddr, error) {
	ip4 := ip.To4()
	if ip4 == nil {
		return nil, fmt.Errorf("%s is not an IPv4 address", ip)
	}
	if len(a.hw) != 6 {
		return nil, errors.New("the NIC has no Ethernet address")
	}
	if err := a.open(); err != nil {
		return nil, err
	}
	var key [4]byte
	copy(key[:], ip4)
	c := make(chan net.HardwareAddr, 1)
	a.mu.Lock()
	a.waiting[key] = append(a.waiting[key], c)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		w := a.waiting[key]
		for i := range w {
			if w[i] == c {
				w = append(w[:i], w[i+1:]...)
				break
			}
		}
		if len(w) == 0 {
			delete(a.waiting, key)
		} else {
			a.waiting[key] = w
		}
	}()
	req := make([]byte, 28)
	copy(req, []byte{0, 1, 8, 0, 6, 4, 0, 1})
	copy(req[8:14], a.hw)
	copy(req[24:28], ip4)
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: a.ifindex, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	raw, err := a.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var sendErr error
	if err := raw.Write(func(fd uintptr) bool {
		sendErr = unix.Sendto(int(fd), req, 0, to)
		return !errors.Is(sendErr, unix.EAGAIN)
	}); err != nil {
		return nil, err
	}
	if sendErr != nil {
		return nil, fmt.Errorf("sending an ARP probe for %s: %w", ip4, sendErr)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case hw := <-c:
		return hw, nil
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close closes the socket; a prober never opened stays closed.
func (a *arpProber) close() error {
	a.once.Do(func() { a.openErr = errors.New("the NIC's socket is closed") })
	if a.f == nil {
		return nil
	}
	return a.f.Close()
}
