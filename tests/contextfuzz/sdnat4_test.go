package contextfuzz

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/hypercx/vrouter/pkg/onegate"
	"github.com/hypercx/vrouter/pkg/sdnat4"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// fixtureNetworks are the simulator's standard networks as a router sees
// them (EXTERNAL aliases included), fetched once over loopback: the fuzzed
// render maps them instead of asking a OneGate (the fuzzer may put any URL in
// ONEGATE_ENDPOINT, and nothing may be sent anywhere).
var fixtureNetworks = sync.OnceValues(func() ([]onegate.VNet, error) {
	srv := httptest.NewServer(sim.New(sim.Fixtures(), "fuzz-token"))
	defer srv.Close()
	u, err := onegate.ParseEndpoint(srv.URL)
	if err != nil {
		return nil, err
	}
	c, err := onegate.New(onegate.Config{Endpoint: u, Token: "fuzz-token", VMID: 10, Attempts: 1}, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Networks(context.Background())
})

type fixedGate struct{}

func (fixedGate) Networks(context.Context) ([]onegate.VNet, error) { return fixtureNetworks() }

func FuzzSDNAT4Context(f *testing.F) {
	svc := sdnat4.Service{Gate: func(onegate.Config, *slog.Logger) (sdnat4.Gate, func(), error) {
		return fixedGate{}, func() {}, nil
	}}
	fuzzRender(f, svc, []string{sdnat4.VarEnabled, sdnat4.VarInterfaces, sdnat4.VarRefreshRate,
		onegate.VarEndpoint, onegate.VarToken, onegate.VarSkipTLSVerify, "ONEAPP_VNF_CONNTRACKD_ENABLED"},
		"a=YES\nb=eth0 eth1\nc=30\nd=http://onegate:5030", "a=yes\nb=!eth0\nc=0.5\nd=https://x/onegate", "a=YES\nc=0x1F\nd=ftp://x")
}
