package contextfuzz

import (
	"testing"

	"github.com/hypercx/vrouter/pkg/nat4"
	"github.com/hypercx/vrouter/pkg/router4"
)

func FuzzRouter4Context(f *testing.F) {
	fuzzRender(f, router4.Service{}, []string{router4.VarEnabled, router4.VarInterfaces},
		"a=NO\nb=!eth1", "a=yes\nb=eth0 10.0.0.2@53")
}

func FuzzNAT4Context(f *testing.F) {
	fuzzRender(f, nat4.Service{}, []string{nat4.VarEnabled, nat4.VarInterfacesOut,
		nat4.VarPortFwd + "0", nat4.VarPortFwd + "1", nat4.VarPortFwd + "12"},
		"a=YES\nb=eth0\nc=<ETH0_EP0>:80:10.0.0.5:8080", "a=YES\nc=2222:10.0.0.5")
}
