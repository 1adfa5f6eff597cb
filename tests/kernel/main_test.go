// Package kernel holds the kernel tests: the real binaries run as root
// against the real kernel and iptables, inside throwaway namespaces created
// by the lab package. Without root (or the tools) they skip and say why.
package kernel

import (
	"fmt"
	"os"
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

func needLab(t *testing.T) *lab.Lab {
	t.Helper()
	if why := lab.CanRun(); why != "" {
		t.Skip("kernel test skipped: " + why)
	}
	l, err := lab.New("k")
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
