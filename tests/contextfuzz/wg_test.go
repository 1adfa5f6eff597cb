package contextfuzz

import (
	"testing"

	"github.com/hypercx/vrouter/pkg/wg"
)

// FuzzWGContext: whatever the WireGuard variables hold, render fails only
// with an invalid-context error naming a variable. Render reads no OneGate
// here (ONEGATE_ENDPOINT is never set) and finds no stored configuration
// under the fuzz root, so every input resolves to a fresh configuration.
func FuzzWGContext(f *testing.F) {
	fuzzRender(f, wg.Service{}, []string{wg.VarEnabled, wg.VarInterfaceOut, wg.VarInterfaceIn, wg.VarListenPort,
		wg.VarDevice, wg.VarPeers, wg.VarSubnet},
		"a=YES\nb=eth0\nc=eth1", "a=YES\nb=eth0\nc=eth1\nd=0\ne=wg0'\nf=1000\ng=10.0.0.0/8",
		"a=yes\nb=ETH1\nc=eth0\ng=169.254.33.0/29\nf=6", "a=1\nb=eth2\nc=eth2\nd=65535")
}
