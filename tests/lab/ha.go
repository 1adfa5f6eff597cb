package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// The HA lab's networks: router instances share a public segment and a
// private one; the floating IPs (VIPs) move between them with VRRP.
const (
	PublicVIP  = "203.0.113.1"
	PrivateVIP = "10.0.0.1"
	InetAddr   = "203.0.113.100"
)

// HA is a high-availability lab: router instances vr1..vrN with eth0 on the
// public segment (203.0.113.2, .3, ...) and eth1 on the private one
// (10.0.0.2, .3, ...), an internet host on the public segment and VMs on
// the private one (10.0.0.12, .13, ...) whose gateway is the private VIP.
type HA struct {
	Lab             *Lab
	Public, Private *Segment
	Routers         []*Router
	Inet            *Namespace
	VMs             []*Namespace
}

// RouterIP is router i's (0-based) own address on the public or private
// segment.
func RouterIP(i int, public bool) string {
	if public {
		return "203.0.113." + strconv.Itoa(2+i)
	}
	return "10.0.0." + strconv.Itoa(2+i)
}

// VMIP is VM i's (0-based) address.
func VMIP(i int) string { return "10.0.0." + strconv.Itoa(12+i) }

// HA builds the topology with routers router instances and vms VMs. The
// routers get their own addresses only: the VIPs are keepalived's.
func (l *Lab) HA(routers, vms int) (*HA, error) {
	h := &HA{Lab: l}
	var err error
	if h.Public, err = l.Segment("public"); err != nil {
		return nil, err
	}
	if h.Private, err = l.Segment("private"); err != nil {
		return nil, err
	}
	if h.Inet, err = l.Host("inet"); err != nil {
		return nil, err
	}
	if err := h.Public.Attach(h.Inet, "eth0", InetAddr+"/24"); err != nil {
		return nil, err
	}
	for i := 0; i < routers; i++ {
		r, err := l.Router("vr" + strconv.Itoa(i+1))
		if err != nil {
			return nil, err
		}
		if err := h.Public.Attach(r, "eth0", RouterIP(i, true)+"/24"); err != nil {
			return nil, err
		}
		if err := h.Private.Attach(r, "eth1", RouterIP(i, false)+"/24"); err != nil {
			return nil, err
		}
		h.Routers = append(h.Routers, r)
	}
	for i := 0; i < vms; i++ {
		vm, err := l.Host("vm" + strconv.Itoa(i+1))
		if err != nil {
			return nil, err
		}
		if err := h.Private.Attach(vm, "eth0", VMIP(i)+"/24"); err != nil {
			return nil, err
		}
		if _, err := Run(context.Background(), vm, "ip", "route", "add", "default", "via", PrivateVIP); err != nil {
			return nil, err
		}
		h.VMs = append(h.VMs, vm)
	}
	return h, nil
}

// Context is router i's one_env: its own addresses and the VIPs (every
// instance of a virtual router gets the same VIPs from OpenNebula), then
// extra, the shared part of the context in one_env format.
func (h *HA) Context(i int, extra string) string {
	return fmt.Sprintf(`export ETH0_IP="%s"
export ETH0_MASK="255.255.255.0"
export ETH0_VROUTER_IP="%s"
export ETH1_IP="%s"
export ETH1_MASK="255.255.255.0"
export ETH1_VROUTER_IP="%s"
`, RouterIP(i, true), PublicVIP, RouterIP(i, false), PrivateVIP) + extra
}

// Recontext writes the instance's one_env and runs what a boot or a
// recontextualization runs: `configure` of every service given, the
// failover service first (it starts or reloads keepalived and the
// one-failover daemon, which then starts what the context enables). The
// services must be installed.
func (r *Router) Recontext(env string, services ...string) error {
	if err := r.WriteFile("/run/one-context/one_env", []byte(env), 0o400); err != nil {
		return err
	}
	ordered := []string{}
	for _, s := range services {
		if s == "one-failover" {
			ordered = append([]string{s}, ordered...)
		} else {
			ordered = append(ordered, s)
		}
	}
	for _, s := range ordered {
		if out, err := Run(context.Background(), r, "/usr/sbin/"+s, "configure"); err != nil {
			return fmt.Errorf("%s configure: %v: %s", s, err, out)
		}
	}
	return nil
}

// HasAddr reports whether dev of h holds addr.
func HasAddr(h Host, dev, addr string) bool {
	out, err := Run(context.Background(), h, "ip", "-4", "-o", "addr", "show", "dev", dev)
	return err == nil && strings.Contains(out, " inet "+addr+"/")
}

// Holders lists the routers whose eth1 holds the private VIP.
func (h *HA) Holders() []*Router {
	var out []*Router
	for _, r := range h.Routers {
		if HasAddr(r, "eth1", PrivateVIP) {
			out = append(out, r)
		}
	}
	return out
}

// Master waits until exactly one router holds the private VIP and returns it.
func (h *HA) Master(timeout time.Duration) (*Router, error) {
	var m *Router
	err := Eventually(timeout, 50*time.Millisecond, func() error {
		hs := h.Holders()
		if len(hs) != 1 {
			names := []string{}
			for _, r := range hs {
				names = append(names, r.Role)
			}
			return fmt.Errorf("%d routers hold %s (%s)", len(hs), PrivateVIP, strings.Join(names, " "))
		}
		m = hs[0]
		return nil
	})
	return m, err
}

// Other returns a router of the lab that is not r.
func (h *HA) Other(r *Router) *Router {
	for _, x := range h.Routers {
		if x != r {
			return x
		}
	}
	return nil
}

// PIDs lists the processes of the instance (its mount namespace) whose
// command name is comm.
func (r *Router) PIDs(comm string) []int {
	// The kernel keeps 15 characters of a command name
	// ("supervise-daemo").
	if len(comm) > 15 {
		comm = comm[:15]
	}
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == r.pid || !r.inInstance(e.Name()) {
			continue
		}
		if c, err := os.ReadFile("/proc/" + e.Name() + "/comm"); err == nil && strings.TrimSpace(string(c)) == comm {
			out = append(out, pid)
		}
	}
	return out
}

// PIDsWith lists the processes of the instance called comm whose command
// line holds arg (a supervise-daemon by the service it supervises).
func (r *Router) PIDsWith(comm, arg string) []int {
	var out []int
	for _, p := range r.PIDs(comm) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if err == nil && slices.Contains(strings.Split(string(b), "\x00"), arg) {
			out = append(out, p)
		}
	}
	return out
}

// Kill sends SIGKILL to every process of the instance called comm and
// returns how many there were.
func (r *Router) Kill(comm string) int {
	pids := r.PIDs(comm)
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	return len(pids)
}

// Links sets the instance's NICs up or down (a node losing its network).
func (r *Router) Links(up bool, nics ...string) error {
	state := "down"
	if up {
		state = "up"
	}
	for _, n := range nics {
		if _, err := Run(context.Background(), r, "ip", "link", "set", n, state); err != nil {
			return err
		}
	}
	return nil
}

// Lose makes the router a lost node: its links go down and its keepalived
// is killed (it leaves its VIPs behind, as a crashed node would).
func (r *Router) Lose() error {
	if err := r.Links(false, "eth0", "eth1"); err != nil {
		return err
	}
	if r.Kill("keepalived") == 0 {
		return fmt.Errorf("%s: no keepalived to kill", r.Role)
	}
	return nil
}

// Return brings a lost router's links back.
func (r *Router) Return() error { return r.Links(true, "eth0", "eth1") }

// ServiceState is `rc-service <svc> status` inside the instance ("started",
// "stopped", "crashed", ...).
func (r *Router) ServiceState(svc string) string {
	// Every state but started and stopped comes on stderr, with a non-zero
	// exit status.
	b, _ := r.Command(context.Background(), "rc-service", svc, "status").CombinedOutput()
	out := string(b)
	for _, l := range strings.Split(out, "\n") {
		if _, v, ok := strings.Cut(l, "status:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return f[0]
			}
		}
	}
	return strings.TrimSpace(out)
}

// InNetns runs f on an OS thread that has entered h's network namespace:
// sockets f creates live in that namespace (and keep working from any
// thread afterwards). The thread goes back to its namespace afterwards.
func InNetns(h Host, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("reading the current network namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(h.Netns())
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", h.Netns(), err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return fmt.Errorf("entering network namespace %s: %w", h.Netns(), err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// The thread cannot be trusted any more: keep it locked so the
		// runtime ends it with this goroutine.
		runtime.LockOSThread()
		return errors.Join(ferr, fmt.Errorf("leaving network namespace %s: %w", h.Netns(), err))
	}
	return ferr
}

// Answer is one answered probe of a Watch.
type Answer struct {
	Sent, Received time.Time
	Text           string // the nettool server's answer ("peer=... local=... name=...")
}

// Watch probes a nettool UDP server from a host at a steady rate, each probe
// from a fresh socket (a fresh flow for NAT and conntrack), and records the
// answers: traffic as a VM sees it while routers fail over.
type Watch struct {
	mu      sync.Mutex
	answers []Answer
	stop    chan struct{}
	done    chan struct{}
}

// StartWatch sends a datagram to addr from h every interval until Stop.
func StartWatch(h Host, addr string, every time.Duration) (*Watch, error) {
	raddr, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, err
	}
	w := &Watch{stop: make(chan struct{}), done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		defer close(w.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		err := InNetns(h, func() error {
			started <- nil
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				c, err := net.DialUDP("udp4", nil, raddr)
				if err == nil {
					sent := time.Now()
					if _, err := c.Write([]byte("watch\n")); err != nil {
						c.Close()
					} else {
						wg.Add(1)
						go w.await(c, sent, &wg)
					}
				}
				select {
				case <-w.stop:
					return nil
				case <-tick.C:
				}
			}
		})
		if err != nil {
			started <- err
		}
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Watch) await(c *net.UDPConn, sent time.Time, wg *sync.WaitGroup) {
	defer wg.Done()
	defer c.Close()
	_ = c.SetReadDeadline(sent.Add(2 * time.Second))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return
	}
	w.mu.Lock()
	w.answers = append(w.answers, Answer{Sent: sent, Received: time.Now(), Text: strings.TrimSpace(string(buf[:n]))})
	w.mu.Unlock()
}

// FirstSince waits up to timeout for the first answer to a probe sent
// after t whose text contains want (any answer when want is empty).
func (w *Watch) FirstSince(t time.Time, want string, timeout time.Duration) (Answer, error) {
	var a Answer
	err := Eventually(timeout, 5*time.Millisecond, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		var best *Answer
		for i := range w.answers {
			x := &w.answers[i]
			if x.Sent.After(t) && strings.Contains(x.Text, want) && (best == nil || x.Received.Before(best.Received)) {
				best = x
			}
		}
		if best == nil {
			return fmt.Errorf("no answer to a probe sent since %s containing %q", t.Format("15:04:05.000"), want)
		}
		a = *best
		return nil
	})
	return a, err
}

// Stop ends the probes and waits for the last answers.
func (w *Watch) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}
