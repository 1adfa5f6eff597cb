// Package e2e holds the end-to-end tests of the appliance: router instances
// side by side (each a network namespace with its own mount namespace, so
// the binaries are installed with their own install verb and the real
// OpenRC scripts, keepalived and conntrackd run in each), hosts behind
// them, real traffic, failover. Root only; without it they skip and say why.
package e2e

import (
	"testing"

	"github.com/hypercx/vrouter/tests/lab"
)

func TestMain(m *testing.M) { lab.Main(m) }

// needLab is a lab for t, which needs OpenRC and keepalived besides tools.
func needLab(t *testing.T, tools ...string) *lab.Lab {
	t.Helper()
	return lab.ForTest(t, "e", append([]string{"keepalived", "rc-service", "supervise-daemon"}, tools...)...)
}
