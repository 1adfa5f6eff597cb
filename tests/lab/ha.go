package lab

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	target, err := os.Stat(fmt.Sprintf("/proc/%d/ns/mnt", r.pid))
	if err != nil {
		return nil
	}
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == r.pid {
			continue
		}
		st, err := os.Stat("/proc/" + e.Name() + "/ns/mnt")
		if err != nil || !os.SameFile(st, target) {
			continue
		}
		if c, err := os.ReadFile("/proc/" + e.Name() + "/comm"); err == nil && strings.TrimSpace(string(c)) == comm {
			out = append(out, pid)
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
	// A script's own status() reports with eerror, on stderr, and may say
	// why ("crashed (wireguard-go is not running)").
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
