package lvs

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/keepalived"
	"github.com/hypercx/vrouter/pkg/lb"
	"github.com/hypercx/vrouter/pkg/lb/lbtest"
	"github.com/hypercx/vrouter/pkg/netfilter/netfiltertest"
	"github.com/hypercx/vrouter/pkg/onegate"
	"github.com/hypercx/vrouter/pkg/openrc"
)

// gate serves one OneFlow service VM whose attributes a test can change.
type gate struct {
	mu    sync.Mutex
	attrs map[string]string
}

func (g *gate) Networks(context.Context) ([]onegate.VNet, error) {
	return nil, errors.New("not a vrouter")
}

func (g *gate) ServiceVMs(context.Context) ([]onegate.VM, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return []onegate.VM{{ID: 30, UserTemplate: g.attrs}}, nil
}

// The daemon over fakes, in OneFlow mode: the static LB at once, the real
// server the service's VM publishes, a withdrawn one removed; keepalived is
// reloaded on each change and the all-ports mark stays in place.
func TestDaemon(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	rc := openrc.NewFake(keepalived.Service)
	rc.States[keepalived.Service] = openrc.Started
	ipt := netfiltertest.New()
	g := &gate{}
	applied := lbtest.NewApplies()
	svc := Service{
		Services:  func(fsroot.Root) openrc.Services { return rc },
		Checker:   &recordingChecker{},
		Resolve:   fakeResolve,
		Client:    func(lb.Config) (lb.OneGate, error) { return g, nil },
		OnApplied: applied.Record,
	}
	env := parse(`ETH0_IP=10.0.1.1
SERVICE_ID=7
ONEGATE_ENDPOINT=http://onegate.invalid:5030
TOKENTXT=t
ONEAPP_VNF_LB_ENABLED=YES
ONEAPP_VNF_LB_ONEGATE_ENABLED=YES
ONEAPP_VNF_LB_REFRESH_RATE=1
ONEAPP_VNF_LB0_IP=10.0.1.1
ONEAPP_VNF_LB0_PROTOCOL=TCP
ONEAPP_VNF_LB0_SERVER0_HOST=172.20.0.104`)
	rt := &cli.Runtime{Env: env, Root: root, Log: slog.New(slog.DiscardHandler), Stdout: &bytes.Buffer{}, Netfilter: ipt.Applier()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Start(ctx, rt) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor := func(want string) { t.Helper(); applied.WaitFor(t, want) }
	waitFor("172.20.0.104")
	g.mu.Lock()
	g.attrs = map[string]string{"ONEGATE_LB0_IP": "<ETH0_EP0>", "ONEGATE_LB0_SERVER_HOST": "web.example", "ONEGATE_LB0_SERVER_WEIGHT": "3"}
	g.mu.Unlock()
	waitFor("172.20.0.104 web.example")
	if b, _ := root.ReadFile(ConfigFile); !strings.Contains(string(b), "real_server 172.20.0.120 {\n        weight 3") ||
		!strings.Contains(string(b), "real_server 172.20.0.121 {") {
		t.Fatalf("lvs.conf:\n%s", b)
	}
	g.mu.Lock()
	g.attrs = nil
	g.mu.Unlock()
	waitFor("172.20.0.104")
	if b, _ := root.ReadFile(ConfigFile); strings.Contains(string(b), "172.20.0.120") {
		t.Fatalf("lvs.conf still has the withdrawn server:\n%s", b)
	}
	if rules, _ := ipt.Rules("mangle", ChainFwmark); len(rules) != 1 {
		t.Fatalf("marks: %v", rules)
	}
	if n := strings.Count(strings.Join(rc.Calls, ","), "keepalived reload"); n < 3 {
		t.Fatalf("keepalived reloads: %v", rc.Calls)
	}
}
