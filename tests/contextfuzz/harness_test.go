// Package contextfuzz fuzzes every service's context parsing through its
// render verb: whatever the context, render must not panic, and every
// failure must be an invalid-context error (exit 2) naming a variable.
package contextfuzz

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

// nicVars are the NIC variables every context has; each fuzz input picks
// from them and from the service's own variables.
var nicVars = []string{
	"ETH0_IP", "ETH0_MASK", "ETH0_NETWORK", "ETH0_VROUTER_IP", "ETH0_VROUTER_MANAGEMENT", "ETH0_GATEWAY", "ETH0_DNS", "ETH0_MTU", "ETH0_MAC",
	"ETH1_IP", "ETH1_MASK", "ETH1_VROUTER_IP", "ONEAPP_VROUTER_ETH1_VIP0", "ONEAPP_VROUTER_ETH1_VIP1", "ETH1_MAC",
	"ETH2_IP", "ETH2_VROUTER_MANAGEMENT", "ETH10_IP", "VROUTER_ID", "VMID", "SERVICE_ID", "DNS",
}

// baseEnv is a valid two-NIC router the fuzzer mutates.
var baseEnv = []string{
	"ETH0_IP=203.0.113.2", "ETH0_MASK=255.255.255.0", "ETH0_VROUTER_IP=203.0.113.1",
	"ETH1_IP=10.0.0.2", "ETH1_MASK=255.255.255.0", "ETH1_VROUTER_IP=10.0.0.1",
}

// envFrom turns fuzz data into a context: each line "k=value" sets the
// variable vars[k % len(vars)] (k a small number), so the fuzzer explores
// values of real variable names rather than random names.
func envFrom(data string, vars []string) onecontext.Env {
	env := onecontext.FromPairs(baseEnv...)
	for _, line := range strings.Split(data, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			continue
		}
		n := 0
		for _, c := range k {
			n = (n*31 + int(c)) % 1_000_003
		}
		env = env.With(vars[n%len(vars)] + "=" + v)
	}
	return env
}

// fuzzRender fuzzes svc's render with the service's variables.
func fuzzRender(f *testing.F, svc cli.Service, vars []string, seeds ...string) {
	all := append(append([]string{}, vars...), nicVars...)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add("a=YES\nb=eth0\nc=<ETH0_EP0>\nd=1:2:3:4:5")
	f.Fuzz(func(t *testing.T, data string) {
		env := envFrom(data, all)
		rt := &cli.Runtime{Env: env, Root: "/nonexistent-fuzz-root", Stdout: &bytes.Buffer{}, Log: slog.New(slog.DiscardHandler)}
		_, err := svc.Render(context.Background(), rt)
		if err == nil {
			return
		}
		if code := cli.ExitCode(err); code != 2 {
			t.Fatalf("render failed with exit %d, want 2 (invalid context): %v", code, err)
		}
		var ve *onecontext.VarError
		if !errors.As(err, &ve) || ve.Name == "" {
			t.Fatalf("error names no variable: %v", err)
		}
		if !strings.Contains(err.Error(), ve.Name+"=") {
			t.Fatalf("message does not name %s: %v", ve.Name, err)
		}
	})
}
