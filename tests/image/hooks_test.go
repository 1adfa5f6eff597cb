package image

import (
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/tests/lab"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// net-99-report-ready, without the onegate command, tells the OneGate
// simulator (on loopback) READY=YES for this VM, only after
// bootstrap_success and with REPORT_READY=YES, and never runs what a
// context value holds.
func TestReportReady(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("needs curl")
	}
	dir := t.TempDir()
	if err := sim.CopyFixtures(sim.Fixtures(), dir); err != nil {
		t.Fatal(err)
	}
	const token = "t0ken-report-ready"
	s := sim.New(dir, token)
	srv := httptest.NewServer(s)
	defer srv.Close()
	pwned := filepath.Join(t.TempDir(), "pwned")
	env := filepath.Join(t.TempDir(), "one_env")
	if err := os.WriteFile(env, []byte(`export TOKENTXT="`+token+`"
export VMID="10"
export ONEGATE_ENDPOINT="`+srv.URL+`"
export NAME="$(touch `+pwned+`)"
`), 0o400); err != nil {
		t.Fatal(err)
	}
	status := filepath.Join(t.TempDir(), "status")
	hook := filepath.Join(lab.RepoRoot(), "alpine/rootfs/etc/one-context.d/net-99-report-ready")
	run := func(reportReady, st string) {
		t.Helper()
		if err := os.WriteFile(status, []byte(st+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(hook)
		// No onegate command on this PATH: the curl fallback answers.
		bin := t.TempDir()
		for _, tool := range []string{"sh", "sed", "tail", "cat", "mktemp", "chmod", "rm", "curl"} {
			if p, err := exec.LookPath(tool); err == nil {
				_ = os.Symlink(p, filepath.Join(bin, tool))
			}
		}
		cmd.Env = []string{"PATH=" + bin, "REPORT_READY=" + reportReady, "ONE_CONTEXT_ENV=" + env, "ONE_APPLIANCE_STATUS=" + status}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("net-99-report-ready: %v %s", err, out)
		}
	}
	ready := func() string {
		tmpl, err := s.UserTemplate(10)
		if err != nil {
			t.Fatal(err)
		}
		return tmpl["READY"]
	}
	run("NO", "bootstrap_success")
	run("YES", "configure_failure")
	if got := ready(); got != "" {
		t.Fatalf("reported READY=%q before it should", got)
	}
	run("YES", "bootstrap_success")
	if got := ready(); got != "YES" {
		t.Fatalf("READY=%q, want YES", got)
	}
	for _, r := range s.Requests() {
		if strings.Contains(r.Path, token) {
			t.Fatal("the token in a URL")
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a context value was executed")
	}
}
