// Package e2e holds the end-to-end tests of the appliance: router instances
// side by side (each a network namespace with its own mount namespace, so
// the binaries are installed with their own install verb and the real
// OpenRC scripts, keepalived and conntrackd run in each), hosts behind
// them, real traffic, failover. Root only; without it they skip and say why.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/hypercx/vrouter/tests/lab"
)

func TestMain(m *testing.M) {
	if lab.CanRun() == "" {
		if err := lab.Build(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

func needLab(t *testing.T, tools ...string) *lab.Lab {
	t.Helper()
	if why := lab.CanRun(); why != "" {
		t.Skip("end-to-end test skipped: " + why)
	}
	for _, tool := range append([]string{"keepalived", "rc-service", "supervise-daemon"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("end-to-end test skipped: needs %s (scripts/install-deps.sh installs it)", tool)
		}
	}
	l, err := lab.New("e")
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
