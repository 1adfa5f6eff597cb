package image

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/tests/lab"
)

// The appliance driver, /etc/one-appliance/service, against stand-in
// service binaries and rc-service that record how they are called, under
// both dash and busybox ash (Alpine's /bin/sh): configure runs every
// service's configure in the driver's order with no environment but PATH,
// goes on past a service that fails, then asks one-failover to reload; the
// status file and the banner say which step failed and for which service,
// the step's log keeps every service's output; configure then bootstrap
// ends in bootstrap_success.
func TestDriver(t *testing.T) {
	driver := filepath.Join(lab.RepoRoot(), "alpine", "rootfs", "etc", "one-appliance", "service")
	data, err := os.ReadFile(driver)
	if err != nil {
		t.Fatal(err)
	}
	list := regexp.MustCompile(`(?m)^SERVICES="([^"]*)"`).FindSubmatch(data)
	if list == nil {
		t.Fatal("no SERVICES= in the driver")
	}
	order := strings.Fields(string(list[1]))
	shells := [][]string{{driver}}
	if _, err := exec.LookPath("busybox"); err == nil {
		shells = append(shells, []string{"busybox", "sh", driver})
	}
	for _, sh := range shells {
		t.Run(filepath.Base(sh[0]), func(t *testing.T) {
			dir := t.TempDir()
			sbin, bin, logs := filepath.Join(dir, "sbin"), filepath.Join(dir, "bin"), filepath.Join(dir, "log")
			calls, fail := filepath.Join(dir, "calls"), filepath.Join(dir, "fail")
			for _, d := range []string{sbin, bin} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			write := func(path, body string) {
				t.Helper()
				if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			// A stand-in records its arguments and whether anything but
			// PATH reached it; it fails (exit 2) when named in fail.
			for _, svc := range order {
				write(filepath.Join(sbin, svc), fmt.Sprintf(`#!/bin/sh
echo "%[1]s $* leak=${ONEAPP_LEAK:-none}" >> %[2]s
echo "%[1]s says hello"
if grep -qx %[1]s %[3]s 2>/dev/null; then echo "%[1]s: invalid context: ONEAPP_X=\"y\"" >&2; exit 2; fi
`, svc, calls, fail))
			}
			write(filepath.Join(bin, "rc-service"), fmt.Sprintf("#!/bin/sh\necho \"rc-service $*\" >> %s\n", calls))
			status, motd := filepath.Join(dir, "status"), filepath.Join(dir, "motd")
			run := func(args ...string) error {
				cmd := exec.Command(sh[0], append(sh[1:], args...)...)
				cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "ONEAPP_LEAK=yes",
					"ONE_APPLIANCE_STATUS=" + status, "ONE_APPLIANCE_LOG_DIR=" + logs, "ONE_APPLIANCE_MOTD=" + motd,
					"ONE_APPLIANCE_SBIN=" + sbin, "ONE_APPLIANCE_LOCK=" + filepath.Join(dir, "lock")}
				out, err := cmd.CombinedOutput()
				if len(out) > 0 {
					t.Logf("driver %v: %s", args, out)
				}
				return err
			}
			read := func(path string) string {
				b, _ := os.ReadFile(path)
				return strings.TrimSpace(string(b))
			}
			var want []string
			for _, svc := range order {
				want = append(want, fmt.Sprintf("%s --log-file %s configure leak=none", svc, filepath.Join(logs, svc+".log")))
			}
			want = append(want, "rc-service --ifstarted one-failover reload")

			// One service refuses its context: the others are configured all
			// the same, and the step fails naming it.
			write(fail, "one-nat4\n")
			if err := run("configure"); err == nil {
				t.Fatal("configure with a failing service exited 0")
			}
			if got := strings.Split(read(calls), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if st := read(status); st != "configure_failure" {
				t.Errorf("status %q, want configure_failure", st)
			}
			if m := read(motd); !strings.Contains(m, "FAILED for: one-nat4") {
				t.Errorf("banner does not name one-nat4:\n%s", m)
			}
			steplog := read(filepath.Join(logs, "configure.log"))
			for _, w := range []string{"one-nat4 configure: failed (exit 2)", `one-nat4: invalid context: ONEAPP_X="y"`, "one-router4 says hello", "one-wg configure: ok", "one-failover reload: ok"} {
				if !strings.Contains(steplog, w) {
					t.Errorf("configure.log lacks %q:\n%s", w, steplog)
				}
			}

			// Fixed: configure then bootstrap, as one-context's hook runs them.
			write(fail, "")
			write(calls, "")
			if err := run("configure", "bootstrap"); err != nil {
				t.Fatalf("configure bootstrap: %v", err)
			}
			if st := read(status); st != "bootstrap_success" {
				t.Errorf("status %q, want bootstrap_success", st)
			}
			if m := read(motd); !strings.Contains(m, "All set") {
				t.Errorf("banner:\n%s", m)
			}
			if got := read(calls); got != strings.Join(want, "\n") {
				t.Errorf("calls:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
			}
		})
	}
}
