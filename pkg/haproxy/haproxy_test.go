package haproxy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/pkg/golden"
	"github.com/hypercx/vrouter/pkg/lb/lbtest"
)

// Every rendered configuration is compared with its golden file and, where
// haproxy is installed, judged by haproxy -c. Contexts with
// ONEGATE_ENDPOINT=sim render against the OneGate simulator.
func TestRender(t *testing.T) {
	for _, c := range golden.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			out := golden.Render(t, Service{}, lbtest.Env(t, c.Name, c.Env))
			golden.Check(t, c.Name, out)
			bad := strings.HasPrefix(c.Name, "bad-")
			if bad != bytes.HasPrefix(out, []byte("error (exit 2)")) {
				t.Fatalf("bad-* cases must exit 2 and only they:\n%s", out)
			}
			main, servers, ok := split(out)
			if !ok {
				return
			}
			if !bytes.Equal(main, MainConfig()) {
				t.Fatal("haproxy.cfg is not the fixed one")
			}
			checkConf(t, main, servers)
			for _, line := range strings.Split(string(servers), "\n") {
				if strings.Contains(line, "evil") || strings.Contains(line, "2222") || strings.Contains(line, "198.51.100.66") {
					t.Fatalf("injected text reached servers.cfg: %q", line)
				}
			}
		})
	}
}

// split cuts render's output into the two files.
func split(out []byte) (main, servers []byte, ok bool) {
	rest, ok := bytes.CutPrefix(out, []byte("### "+MainFile+"\n"))
	if !ok {
		return nil, nil, false
	}
	main, servers, ok = bytes.Cut(rest, []byte("### "+ServersFile+"\n"))
	return main, servers, ok
}

// checkConf runs haproxy -c on the two files when haproxy is installed (it
// needs the haproxy user the configuration names).
func checkConf(t *testing.T, main, servers []byte) {
	t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Log("haproxy not installed: configuration not checked by haproxy")
		return
	}
	if _, err := user.Lookup("haproxy"); err != nil {
		t.Log("no haproxy user: configuration not checked by haproxy")
		return
	}
	dir := t.TempDir()
	m, s := filepath.Join(dir, "haproxy.cfg"), filepath.Join(dir, "servers.cfg")
	// The admin socket and state file are the router's; point them here.
	main = bytes.ReplaceAll(main, []byte(RunDir), []byte(dir))
	if err := os.WriteFile(m, main, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s, servers, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckExec(context.Background(), m, s); err != nil {
		t.Fatalf("%v\n%s%s", err, main, servers)
	}
}

func TestEmptyServersIsValid(t *testing.T) {
	checkConf(t, MainConfig(), EmptyServers())
	if !strings.Contains(string(EmptyServers()), "No load balancer") {
		t.Fatalf("%s", EmptyServers())
	}
}

func TestAdminSocketNotWorldWritable(t *testing.T) {
	if !strings.Contains(string(MainConfig()), "stats socket "+AdminSocket+" mode 600 level admin") {
		t.Fatalf("admin socket:\n%s", MainConfig())
	}
}
