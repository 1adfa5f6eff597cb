package lab

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Main is the TestMain of the test packages that drive the built binaries
// (kernel, end-to-end, bad input): it builds them once, when the lab can
// run on this machine, then runs the tests.
func Main(m *testing.M) {
	if CanRun() == "" {
		if err := Build(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// ForTest creates a lab (names prefixed with prefix) that is removed when t
// ends. When the machine cannot run the lab, or lacks one of tools, it skips
// t and says why.
func ForTest(t testing.TB, prefix string, tools ...string) *Lab {
	t.Helper()
	if why := CanRun(); why != "" {
		t.Skip("lab test skipped: " + why)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("lab test skipped: needs %s (scripts/install-deps.sh installs it)", tool)
		}
	}
	l, err := New(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab cleanup: %v", err)
		}
	})
	return l
}
