package kernel

import (
	"context"
	"encoding/base64"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// wgContext: the endpoint on eth0, the private network behind eth1, two
// peers, OneGate (the simulator on the internet host) as VM 10 of the
// fixtures' virtual router.
const wgContext = `export ETH0_IP="203.0.113.1"
export ETH0_MASK="255.255.255.0"
export ETH1_IP="10.0.0.1"
export ETH1_MASK="255.255.255.0"
export ONEAPP_VNF_WG_ENABLED="YES"
export ONEAPP_VNF_WG_INTERFACE_OUT="eth0"
export ONEAPP_VNF_WG_INTERFACE_IN="eth1"
export ONEAPP_VNF_WG_PEERS="2"
export ONEGATE_ENDPOINT="http://203.0.113.100:5030"
export TOKENTXT="wg-kernel-token"
export VMID="10"
`

type wgTopology struct {
	lab    *lab.Lab
	inet   *lab.Router // the internet: the WireGuard client and OneGate
	vm     *lab.Namespace
	router *lab.Router
	gate   *sim.Process
}

func newWGTopology(t *testing.T) *wgTopology {
	t.Helper()
	l := needLab(t)
	for _, tool := range []string{"wireguard-go", "wg", "wg-quick", "rc-service", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("WireGuard test skipped: needs %s (scripts/install-deps.sh installs it)", tool)
		}
	}
	w := &wgTopology{lab: l}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	w.inet, err = l.Router("inet")
	must(err)
	w.vm, err = l.Host("vm")
	must(err)
	w.router, err = l.Router("vr")
	must(err)
	must(l.Link(w.inet, "eth0", w.router, "eth0"))
	must(lab.Addr(w.inet, "eth0", "203.0.113.100/24"))
	must(lab.Addr(w.router, "eth0", "203.0.113.1/24"))
	must(l.Link(w.vm, "eth0", w.router, "eth1"))
	must(lab.Addr(w.vm, "eth0", "10.0.0.12/24"))
	must(lab.Addr(w.router, "eth1", "10.0.0.1/24"))
	lab.MustRun(t, w.vm, "ip", "route", "add", "default", "via", "10.0.0.1")
	// Replies from the VM enter eth1: forwarding there is one-router4's
	// job, done by hand here.
	lab.MustRun(t, w.router, "sysctl", "-qw", "net.ipv4.conf.eth1.forwarding=1")
	_, err = l.Start(w.vm, "vm server", "ready", lab.Bin("nettool"), "serve", "--tcp", ":80", "--name", "vm")
	must(err)
	w.gate, err = sim.Start(l, w.inet, "203.0.113.100:5030", "wg-kernel-token", "")
	must(err)
	must(w.router.Install("one-wg"))
	must(w.router.WriteFile("/run/one-context/one_env", []byte(wgContext), 0o400))
	return w
}

// peerConf is peer n's configuration as published to VM id's user template.
func (w *wgTopology) peerConf(t *testing.T, id int, n string) []byte {
	t.Helper()
	ut, err := w.gate.UserTemplate(w.inet, id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(ut["ONEGATE_VNF_WG_PEER"+n])
	if err != nil || len(b) == 0 {
		t.Fatalf("VM %d holds no peer %s configuration (%v): %v", id, n, err, ut)
	}
	return b
}

// reach checks that the client reaches the VM through the tunnel: the VM
// sees the peer's tunnel address (there is no NAT).
func reach(t *testing.T, h lab.Host, timeout time.Duration) {
	t.Helper()
	var out string
	err := lab.Eventually(timeout, 200*time.Millisecond, func() error {
		var err error
		out, err = lab.Run(context.Background(), h, lab.Bin("nettool"), "probe", "tcp", "10.0.0.12:80", "--timeout", "1s")
		if err == nil && !strings.Contains(out, "peer=169.254.33.2:") {
			err = errors.New("answer " + out)
		}
		return err
	})
	if err != nil {
		t.Fatalf("the client does not reach the VM through the tunnel: %v", err)
	}
}

// runCode runs args in h and returns the exit status and the output.
func runCode(h lab.Host, args ...string) (int, string) {
	out, err := h.Command(context.Background(), args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	case err != nil:
		return -1, err.Error()
	}
	return 0, string(out)
}

// The guide's use, for real, with wireguard-go (this kernel has no
// WireGuard): one-wg under OpenRC publishes the configurations; a client on
// the internet brings the tunnel up with peer 0's published configuration
// (wg-quick) and reaches a VM of the private network; after a restart the
// same configuration still works; a dead wireguard-go makes the service
// crashed, and a restart recovers; stop removes everything, twice.
func TestWGTunnel(t *testing.T) {
	w := newWGTopology(t)
	r := w.router
	if out, err := r.RC("one-wg", "start"); err != nil {
		t.Fatalf("rc-service one-wg start: %v\n%s", err, out)
	}
	if pids := r.PIDs("wireguard-go"); len(pids) != 1 {
		t.Fatalf("wireguard-go processes: %v", pids)
	}
	if out, err := lab.Run(context.Background(), r, "one-wg", "status"); err != nil {
		t.Fatalf("one-wg status: %v\n%s", err, out)
	}
	pub := strings.TrimSpace(lab.MustRun(t, r, "wg", "show", "wg0", "public-key"))
	if mode, err := r.ReadFile("/var/lib/one-wg/stored.env"); err != nil || len(mode) == 0 {
		t.Fatalf("no local copy: %v", err)
	}
	if out := lab.MustRun(t, r, "stat", "-c", "%a", "/var/lib/one-wg/stored.env"); strings.TrimSpace(out) != "600" {
		t.Errorf("local copy mode %s", out)
	}

	conf := w.peerConf(t, 10, "0")
	if !strings.Contains(string(conf), "Endpoint     = 203.0.113.1:51820") || !strings.Contains(string(conf), "PublicKey    = "+pub) {
		t.Fatalf("published peer 0:\n%s", conf)
	}
	client, err := w.lab.WGClient(w.inet, "wgc0", conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Up(); err != nil {
		t.Fatal(err)
	}
	reach(t, w.inet, 10*time.Second)
	// The server's tunnel address answers too (its /32 is in AllowedIPs).
	lab.MustRun(t, w.inet, "ping", "-c1", "-W2", "169.254.33.1")

	// Applied again (reload): wgctrl's view of the live device matches,
	// so nothing is reconfigured, the same wireguard-go serves and the
	// client's session stays.
	goPIDs := r.PIDs("wireguard-go")
	if code, out := runCode(r, "one-wg", "start"); code != 0 || !strings.Contains(out, "changes=0") {
		t.Errorf("second start: exit %d\n%s", code, out)
	}
	if got := r.PIDs("wireguard-go"); len(got) != 1 || got[0] != goPIDs[0] {
		t.Errorf("wireguard-go %v, then %v", goPIDs, got)
	}
	reach(t, w.inet, 10*time.Second)

	// Restart: same keys; the unchanged client reconnects.
	if out, err := r.RC("one-wg", "restart"); err != nil {
		t.Fatalf("restart: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(lab.MustRun(t, r, "wg", "show", "wg0", "public-key")); got != pub {
		t.Fatalf("the server key changed on restart")
	}
	if err := client.Redial(); err != nil {
		t.Fatal(err)
	}
	reach(t, w.inet, 10*time.Second)

	// wireguard-go dies: OpenRC reports one-wg crashed; a restart recovers.
	if r.Kill("wireguard-go") != 1 {
		t.Fatal("no wireguard-go to kill")
	}
	if err := lab.Eventually(5*time.Second, 50*time.Millisecond, func() error {
		if st := r.ServiceState("one-wg"); st != "crashed" {
			return errors.New("one-wg is " + st)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Right after the kill the TUN device may still be there for a moment:
	// either drift is the truth about the crash.
	if code, out := runCode(r, "one-wg", "status"); code != 3 || !(strings.Contains(out, "device wg0 does not exist") || strings.Contains(out, "wireguard-go of wg0 is not running")) {
		t.Errorf("one-wg status after the crash: exit %d, want 3\n%s", code, out)
	}
	// stop after the crash clears what the killed wireguard-go left: its
	// socket (wgctrl and `wg show` would still list a device that does
	// not answer) and the runtime files.
	if out, err := lab.Run(context.Background(), r, "one-wg", "stop"); err != nil {
		t.Fatalf("stop after the crash: %v %s", err, out)
	}
	if out, _ := lab.Run(context.Background(), r, "sh", "-c", "ls /var/run/wireguard/ /run/one-wg/ 2>/dev/null"); strings.Contains(out, "wg0.sock") || strings.Contains(out, ".pid") {
		t.Errorf("left after stop of a crashed wireguard-go:\n%s", out)
	}
	if out, err := r.RC("one-wg", "restart"); err != nil {
		t.Fatalf("restart after the crash: %v\n%s", err, out)
	}
	if err := client.Redial(); err != nil {
		t.Fatal(err)
	}
	reach(t, w.inet, 10*time.Second)

	// A bad context exits 2 and changes nothing.
	bad := strings.Replace(wgContext, `PEERS="2"`, `PEERS="0"`, 1)
	if err := r.WriteFile("/run/one-context/one_env", []byte(bad), 0o400); err != nil {
		t.Fatal(err)
	}
	if code, out := runCode(r, "one-wg", "start"); code != 2 || !strings.Contains(out, "ONEAPP_VNF_WG_PEERS") {
		t.Errorf("bad context: exit %d %s", code, out)
	}
	if got := strings.TrimSpace(lab.MustRun(t, r, "wg", "show", "wg0", "public-key")); got != pub {
		t.Error("a bad context changed the device")
	}

	// stop, twice: no device, no wireguard-go, no socket; keys kept.
	for i := 0; i < 2; i++ {
		if out, err := lab.Run(context.Background(), r, "one-wg", "stop"); err != nil {
			t.Fatalf("stop %d: %v %s", i, err, out)
		}
	}
	if _, err := lab.Run(context.Background(), r, "ip", "link", "show", "wg0"); err == nil {
		t.Error("wg0 left")
	}
	if pids := r.PIDs("wireguard-go"); len(pids) != 0 {
		t.Errorf("wireguard-go left: %v", pids)
	}
	if out, _ := lab.Run(context.Background(), r, "sh", "-c", "ls /var/run/wireguard/ 2>/dev/null"); strings.TrimSpace(out) != "" {
		t.Errorf("sockets left: %s", out)
	}
	if err := client.Down(); err != nil {
		t.Error(err)
	}
}
