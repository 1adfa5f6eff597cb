// Package kernel holds the kernel tests: the real binaries run as root
// against the real kernel and iptables, inside throwaway namespaces created
// by the lab package. Without root (or the tools) they skip and say why.
package kernel

import (
	"testing"

	"github.com/hypercx/vrouter/tests/lab"
)

func TestMain(m *testing.M) { lab.Main(m) }

func needLab(t *testing.T) *lab.Lab {
	t.Helper()
	return lab.ForTest(t, "k")
}
