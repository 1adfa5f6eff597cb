package router4

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/golden"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/sysctl"
)

func TestRender(t *testing.T) {
	for _, c := range golden.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			golden.Check(t, c.Name, golden.Render(t, Service{}, c.Env))
		})
	}
}

// The guide's example, verbatim.
func TestGuideFile(t *testing.T) {
	spec, err := FromContext(onecontext.FromPairs("ETH0_IP=1.1.1.1", "ETH1_IP=10.0.0.1", "ETH2_IP=10.1.0.1",
		"ONEAPP_VNF_ROUTER4_ENABLED=YES", "ONEAPP_VNF_ROUTER4_INTERFACES=eth0 eth1"))
	if err != nil {
		t.Fatal(err)
	}
	want := `net.ipv4.ip_forward = 0
net.ipv4.conf.all.forwarding = 0
net.ipv4.conf.default.forwarding = 0
net.ipv4.conf.eth0.forwarding = 1
net.ipv4.conf.eth1.forwarding = 1
net.ipv4.conf.eth2.forwarding = 0
`
	if d := cmp.Diff(want, string(Render(spec).File)); d != "" {
		t.Error(d)
	}
}

func kernel() *sysctl.Fake {
	return sysctl.NewFake(map[string]string{
		"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.forwarding": "1", "net.ipv4.conf.default.forwarding": "1",
		"net.ipv4.conf.lo.forwarding": "1", "net.ipv4.conf.eth0.forwarding": "1", "net.ipv4.conf.eth1.forwarding": "1",
		"net.ipv4.conf.eth2.forwarding": "1", "net.ipv4.conf.eth3.forwarding": "1",
		// A link another service made and set (one-wg's device).
		"net.ipv4.conf.wg0.forwarding": "1",
	})
}

func runtime(t *testing.T, sc sysctl.Interface, env onecontext.Env) *cli.Runtime {
	return &cli.Runtime{Env: env, Root: fsroot.Root(t.TempDir()), Sysctl: sc, Log: slog.New(slog.DiscardHandler), Stdout: &bytes.Buffer{}}
}

func TestStartTwiceStopTwice(t *testing.T) {
	ctx := context.Background()
	sc := kernel()
	env := onecontext.FromPairs("ETH0_IP=203.0.113.2", "ETH1_IP=10.0.0.1", "ETH2_IP=192.168.1.1",
		"ETH3_IP=172.16.0.1", "ETH3_VROUTER_MANAGEMENT=YES", "ETH4_IP=10.4.0.1", "ONEAPP_VNF_ROUTER4_INTERFACES=!eth2")
	rt := runtime(t, sc, env)
	if err := (Service{}).Start(ctx, rt); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"net.ipv4.ip_forward": "0", "net.ipv4.conf.all.forwarding": "0", "net.ipv4.conf.default.forwarding": "0",
		"net.ipv4.conf.eth0.forwarding": "1", "net.ipv4.conf.eth1.forwarding": "1",
		"net.ipv4.conf.eth2.forwarding": "0",
		// The management NIC, and the links Router4 does not own, keep
		// their value although the global switch reset them.
		"net.ipv4.conf.eth3.forwarding": "1", "net.ipv4.conf.wg0.forwarding": "1", "net.ipv4.conf.lo.forwarding": "1",
	}
	if d := cmp.Diff(want, sc.Values); d != "" {
		t.Fatalf("after start (-want +got):\n%s", d)
	}
	file, err := rt.Root.ReadFile(SysctlFile)
	if err != nil || !bytes.Contains(file, []byte("net.ipv4.conf.eth4.forwarding = 1\n")) || bytes.Contains(file, []byte("eth3")) {
		t.Fatalf("persisted file: %q %v", file, err)
	}
	writes := sc.Writes
	if err := (Service{}).Start(ctx, rt); err != nil || sc.Writes != writes {
		t.Fatalf("second start wrote %d times (%v)", sc.Writes-writes, err)
	}
	rep, err := (Service{}).Status(ctx, rt)
	if err != nil || len(rep.Drift) != 0 || !rep.Applied {
		t.Fatalf("status after start: %+v %v", rep, err)
	}
	for i := 0; i < 2; i++ {
		if err := (Service{}).Stop(ctx, rt); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"eth0", "eth1", "eth2"} {
			if sc.Values[ForwardingKey(n)] != "0" {
				t.Fatalf("stop %d left %s forwarding", i, n)
			}
		}
		if sc.Values[ForwardingKey("eth3")] != "1" {
			t.Fatal("stop touched the management NIC")
		}
	}
	rep, _ = (Service{}).Status(ctx, rt)
	if len(rep.Drift) == 0 {
		t.Fatal("status after stop reports no drift")
	}
}

// A NIC of the context the kernel does not have is skipped, not fatal.
func TestMissingInterfaceSkipped(t *testing.T) {
	sc := kernel()
	rt := runtime(t, sc, onecontext.FromPairs("ETH0_IP=1.2.3.4", "ETH7_IP=10.7.0.1"))
	if err := (Service{}).Start(context.Background(), rt); err != nil {
		t.Fatal(err)
	}
	if sc.Values[ForwardingKey("eth0")] != "1" {
		t.Fatal("eth0 not forwarding")
	}
}

// Stop works on a context that does not parse, and on an empty system.
func TestStopLenient(t *testing.T) {
	sc := sysctl.NewFake(map[string]string{"net.ipv4.ip_forward": "0", "net.ipv4.conf.all.forwarding": "0", "net.ipv4.conf.default.forwarding": "0"})
	rt := runtime(t, sc, onecontext.FromPairs("ETH0_IP=bogus", "ONEAPP_VNF_ROUTER4_INTERFACES=eth9"))
	if err := (Service{}).Stop(context.Background(), rt); err != nil {
		t.Fatal(err)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	sc := kernel()
	before := sc.String()
	rt := runtime(t, sc, onecontext.FromPairs("ETH0_IP=1.2.3.4", "ONEAPP_VNF_ROUTER4_INTERFACES=eth0 eth5"))
	err := (Service{}).Start(context.Background(), rt)
	if cli.ExitCode(err) != 2 {
		t.Fatalf("exit %d: %v", cli.ExitCode(err), err)
	}
	if sc.String() != before || rt.Root.Exists(SysctlFile) {
		t.Fatal("bad input changed the system")
	}
}
