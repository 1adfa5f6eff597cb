// Package badinput runs the real binaries with malformed contexts against a
// router instance that runs a good one (the appliance booted through
// one-context's hook, keepalived master, every implemented service
// started), and checks that each is refused with exit 2 naming the
// variable, that the refusal is what status shows as the last error, and
// that the kernel (rules, addresses, sysctls), the daemons' files and the
// running services are exactly as they were. Root only; without it the
// test skips and says why.
package badinput

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/tests/lab"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// installed are the services the router runs; a service plugs in here once
// its binary is implemented.
var installed = []string{"one-failover", "one-router4", "one-nat4", "one-dns", "one-dhcp4v2", "one-wg", "one-sdnat4", "one-lvs", "one-haproxy"}

// verbs that read the context and must refuse a bad one.
var verbs = []string{"configure", "start", "render"}

func TestMain(m *testing.M) { lab.Main(m) }

func TestBadInput(t *testing.T) {
	l := lab.ForTest(t, "i", "keepalived", "rc-service", "supervise-daemon", "unbound", "haproxy", "wireguard-go")
	h, err := l.HA(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := h.Routers[0]
	// OneGate, for SDNAT4 and the dynamic backends: the simulator on the
	// internet host, describing the lab's networks (scripts/lab/onegate).
	gate, err := sim.Start(l, h.Inet, strings.TrimPrefix(gateURL, "http://"), gateToken, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"vnet-0", "vnet-1", "vm-20"} {
		doc, err := os.ReadFile(filepath.Join(lab.RepoRoot(), "scripts", "lab", "onegate", name+".json"))
		if err == nil {
			err = gate.WriteDocument(name, doc)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := r.InstallAppliance(installed...); err != nil {
		t.Fatal(err)
	}
	var shared strings.Builder
	for _, svc := range installed {
		shared.WriteString(good[svc])
	}
	goodEnv := h.Context(0, shared.String())
	if status, err := r.Contextualize(goodEnv); err != nil || status != "bootstrap_success" {
		t.Fatalf("the good context: %q %v", status, err)
	}
	// Settled: master (alone), every service started by one-failover.
	if err := lab.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		for _, svc := range installed[1:] {
			if st := r.ServiceState(svc); st != "started" {
				return fmt.Errorf("%s is %s", svc, st)
			}
		}
		if len(r.LogLines("/var/log/one-appliance/one-failover.log", "msg=applied", "action=serve")) == 0 {
			return errors.New("one-failover has not served")
		}
		// The daemons applied the good context: what the bad ones must
		// leave alone is there (SDNAT4's mapping from OneGate, LVS's marks
		// and lvs.conf, HAProxy's servers).
		k, err := r.Kernel()
		if err != nil {
			return err
		}
		for _, want := range []string{"-A DNAT4 -d 203.0.113.20/32 -j DNAT --to-destination 10.0.0.14", "-A LVS-FWMARK "} {
			if !strings.Contains(k.Rules, want) {
				return fmt.Errorf("no %q in the kernel yet", want)
			}
		}
		for file, want := range map[string]string{"/etc/keepalived/conf.d/lvs.conf": "10.0.0.13 443", "/etc/haproxy/servers.cfg": "10.0.0.13:80"} {
			if b, _ := r.ReadFile(file); !strings.Contains(string(b), want) {
				return fmt.Errorf("no %q in %s yet", want, file)
			}
		}
		if st := r.ServiceState("haproxy"); st != "started" {
			return fmt.Errorf("haproxy is %s", st)
		}
		return nil
	}); err != nil {
		b, _ := r.ReadFile("/var/log/one-appliance/one-failover.log")
		t.Fatalf("%v\n%s", err, b)
	}
	before := snapshot(t, r)

	for _, svc := range installed {
		cases := corpus[svc]
		t.Run(svc, func(t *testing.T) {
			if len(cases) == 0 {
				t.Fatalf("no bad contexts for %s in the corpus", svc)
			}
			for _, c := range cases {
				t.Run(c.Name, func(t *testing.T) {
					if err := r.WriteFile("/run/badinput/one_env", []byte(goodEnv+exports(c.Set)), 0o400); err != nil {
						t.Fatal(err)
					}
					for _, verb := range verbs {
						code, stderr := run(t, r, svc, "--env-file", "/run/badinput/one_env", verb)
						if code != 2 {
							t.Errorf("%s %s: exit %d, want 2: %s", svc, verb, code, stderr)
						}
						if !strings.Contains(stderr, c.Var+"=") {
							t.Errorf("%s %s: the message does not name %s: %s", svc, verb, c.Var, stderr)
						}
						for _, s := range secrets {
							if strings.Contains(stderr, s) {
								t.Errorf("%s %s printed a secret: %s", svc, verb, stderr)
							}
						}
					}
					// status shows the refusal as start's last error.
					var rep cli.Report
					out, _ := lab.Run(context.Background(), r, "/usr/sbin/"+svc, "status", "--json")
					if err := json.Unmarshal([]byte(out), &rep); err != nil {
						t.Fatalf("%s status --json: %v: %s", svc, err, out)
					}
					if !lastError(rep, "start", c.Var) || !lastError(rep, "configure", c.Var) {
						t.Errorf("%s status does not show the refusal: %+v", svc, rep.LastErrors)
					}
					if d := before.diff(snapshot(t, r)); len(d) > 0 {
						t.Errorf("a refused context changed the router:\n%s", strings.Join(d, "\n"))
						before = snapshot(t, r)
					}
				})
			}
		})
	}
	if _, err := os.Stat(r.Path("/tmp/badinput-pwned")); err == nil {
		t.Error("a context value was executed")
	}

	// The comparison sees what a context does change: a valid new port
	// forward (a rule) and DNS domain (unbound.conf), then the good
	// context again.
	t.Run("changes are seen", func(t *testing.T) {
		if err := r.WriteFile("/run/badinput/one_env", []byte(goodEnv+exports([]string{"ONEAPP_VNF_NAT4_PORT_FWD5=9999:10.0.0.12:80", "ONEAPP_VNF_DNS_CLUSTER_DOMAIN=changed.example"})), 0o400); err != nil {
			t.Fatal(err)
		}
		for _, c := range [][]string{{"one-nat4", "start"}, {"one-dns", "configure"}} {
			if code, stderr := run(t, r, c[0], "--env-file", "/run/badinput/one_env", c[1]); code != 0 {
				t.Fatalf("%v: exit %d: %s", c, code, stderr)
			}
		}
		d := strings.Join(before.diff(snapshot(t, r)), "\n")
		if !strings.Contains(d, "9999") || !strings.Contains(d, "/etc/unbound/unbound.conf") {
			t.Fatalf("the changes were not seen:\n%s", d)
		}
		for _, c := range [][]string{{"one-nat4", "start"}, {"one-dns", "configure"}} {
			if code, stderr := run(t, r, c[0], c[1]); code != 0 {
				t.Fatalf("%v: exit %d: %s", c, code, stderr)
			}
		}
		if d := before.diff(snapshot(t, r)); len(d) > 0 {
			t.Fatalf("the good context did not restore the router:\n%s", strings.Join(d, "\n"))
		}
	})
}

// exports renders NAME=value pairs as one_env lines (values quoted the way
// a POSIX shell reads them, so any byte survives).
func exports(set []string) string {
	var b strings.Builder
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`")
	for _, kv := range set {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=\"%s\"\n", k, q.Replace(v))
	}
	return b.String()
}

// run runs a service binary in the router and returns its exit status and
// stderr. A daemon that accepted the context would run on: it is killed
// after a while and the run counts as accepted (exit 0).
func run(t *testing.T, r *lab.Router, svc string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := r.Command(ctx, append([]string{"/usr/sbin/" + svc}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil, ctx.Err() != nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Fatalf("running %s: %v", svc, err)
	return 0, ""
}

func lastError(rep cli.Report, verb, name string) bool {
	for _, e := range rep.LastErrors {
		if e.Verb == verb && strings.Contains(e.Message, name+"=") {
			return true
		}
	}
	return false
}

// state is what a refused context must not change.
type state struct {
	kernel lab.KernelState
	starts map[string]string
	files  map[string]string
}

// snapshot reads the kernel, the service starts and daemon PIDs, and every
// file the instance changed under /etc and /var/lib (its overlay's upper
// layer: what the services wrote, the daemons' configurations and leases
// included; /var/log and /run change by design).
func snapshot(t *testing.T, r *lab.Router) state {
	t.Helper()
	k, err := r.Kernel()
	if err != nil {
		t.Fatal(err)
	}
	s := state{kernel: k, starts: r.Starts(), files: map[string]string{}}
	for _, dir := range []string{"/etc", "/var/lib"} {
		upper := r.Upper(dir)
		_ = filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			v := info.Mode().String()
			if info.Mode().IsRegular() {
				data, err := os.ReadFile(p)
				if err != nil {
					return nil
				}
				sum := sha256.Sum256(data)
				v += " " + hex.EncodeToString(sum[:8])
			}
			s.files[dir+strings.TrimPrefix(p, upper)] = v
			return nil
		})
	}
	return s
}

func (a state) diff(b state) []string {
	out := a.kernel.Diff(b.kernel)
	out = append(out, lab.ChangedStarts(a.starts, b.starts)...)
	for p, v := range a.files {
		if b.files[p] != v {
			out = append(out, fmt.Sprintf("file %s: %s -> %s", p, v, b.files[p]))
		}
	}
	for p, v := range b.files {
		if _, ok := a.files[p]; !ok {
			out = append(out, fmt.Sprintf("file %s: new %s", p, v))
		}
	}
	sort.Strings(out)
	return out
}
