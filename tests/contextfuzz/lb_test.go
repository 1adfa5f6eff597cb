package contextfuzz

import (
	"context"
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/pkg/haproxy"
	"github.com/hypercx/vrouter/pkg/lb"
	"github.com/hypercx/vrouter/pkg/lvs"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

// lbVars are the LB variables both services read (for the LVS family; the
// HAProxy ones are the same with the HAPROXY infix).
func lbVars(prefix string, options ...string) []string {
	vars := []string{}
	for _, i := range []string{"0", "1", "10"} {
		p := prefix + i + "_"
		vars = append(vars, p+"IP", p+"PORT")
		for _, o := range options {
			vars = append(vars, p+o)
		}
		for _, j := range []string{"0", "1", "12"} {
			for _, f := range []string{"HOST", "PORT", "WEIGHT", "ULIMIT", "LLIMIT"} {
				vars = append(vars, p+"SERVER"+j+"_"+f)
			}
		}
	}
	return vars
}

func noResolve(context.Context, string) ([]netip.Addr, error) {
	return nil, errors.New("no DNS in fuzzing")
}

func FuzzLVSContext(f *testing.F) {
	vars := append([]string{lvs.VarEnabled, lvs.VarOneGate, lvs.VarInterfaces, lvs.VarRefresh, lvs.VarFwmarkOffset, lb.VarOneGateAPI},
		lbVars(lvs.VarLB, "PROTOCOL", "METHOD", "SCHEDULER")...)
	fuzzRender(f, lvs.Service{Resolve: noResolve}, vars,
		"a=YES\nb=<ETH0_VIP0>\nc=80\nd=10.0.0.5", "a=YES\nb=10.0.0.1\nc=\nd=tcp")
}

func FuzzHAProxyContext(f *testing.F) {
	vars := append([]string{haproxy.VarEnabled, haproxy.VarOneGate, haproxy.VarInterfaces, haproxy.VarRefresh, lb.VarOneGateAPI},
		lbVars(haproxy.VarLB, "BALANCE", "CHECK_INTERVAL")...)
	fuzzRender(f, haproxy.Service{}, vars, "a=YES\nb=<ETH0_EP0>\nc=443\nd=web.example", "a=YES\nb=10.0.0.1\nc=80\nd=leastconn")
}

// Lines a servers.cfg or an lvs.conf may hold: whatever a backend VM
// publishes, nothing else ever reaches the files.
var (
	haproxyLine = regexp.MustCompile(`^(#.*|frontend lb\d+_\d+|backend lb\d+_\d+|    mode tcp|    bind [0-9.]+:\d+ transparent|    default_backend lb\d+_\d+|` +
		`    balance (roundrobin|leastconn|source)|    option tcp-check|` +
		`    server lb\d+_[a-z0-9.-]+_\d+ [a-z0-9.-]+:\d+ check inter \d+m?s weight \d+( maxconn \d+)? observe layer4 error-limit 50 on-error mark-down|)$`)
	lvsLine = regexp.MustCompile(`^(#.*|virtual_server ([0-9.]+ \d+|fwmark \d+) \{|    delay_loop 6|    lb_algo [a-z]+|    lb_kind (NAT|DR)|    protocol (TCP|UDP)|` +
		`    real_server [0-9.]+( \d+)? \{|        weight \d+|        [ul]threshold \d+|        (TCP|PING)_CHECK \{|            connect_timeout 3|` +
		`            connect_port \d+|            retry 4|        \}|    \}|\}|)$`)
)

// FuzzLBDynamic feeds arbitrary OneGate attributes of a backend VM through
// the shared model into both daemons' configurations: every line must be one
// the renderers write, with validated values only.
func FuzzLBDynamic(f *testing.F) {
	keys := []string{"IP", "PORT", "ID", "SERVER_HOST", "SERVER_PORT", "SERVER_WEIGHT", "SERVER_ULIMIT", "SERVER_LLIMIT"}
	f.Add("<ETH0_EP0>", "80", "", "10.0.0.5", "8080", "2", "0", "0")
	f.Add("10.0.0.1", "80", "3", "web-1.example\n    server x 6.6.6.6:22", "8080 check", "1\n}", "-1", "9")
	f.Add("<ETH0_VIP0>", "", "", "10.0.0.5 backup", "", "", "", "")
	env := onecontext.FromPairs(append(append([]string{}, baseEnv...),
		"VROUTER_ID=3",
		"ONEAPP_VNF_LB_ENABLED=YES", "ONEAPP_VNF_LB0_IP=<ETH0_VIP0>", "ONEAPP_VNF_LB0_PORT=80", "ONEAPP_VNF_LB0_PROTOCOL=TCP",
		"ONEAPP_VNF_LB1_IP=<ETH0_VIP0>",
		"ONEAPP_VNF_HAPROXY_ENABLED=YES", "ONEAPP_VNF_HAPROXY_LB0_IP=<ETH0_VIP0>", "ONEAPP_VNF_HAPROXY_LB0_PORT=80")...)
	lsp, err := lvs.FromContext(env, "/nonexistent")
	if err != nil {
		f.Fatal(err)
	}
	hsp, err := haproxy.FromContext(env, "/nonexistent")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ip, port, id, host, sport, weight, ulimit, llimit string) {
		vals := []string{ip, port, id, host, sport, weight, ulimit, llimit}
		objs := []lb.Object{{VM: 40, Attrs: map[string]string{}}}
		for i, k := range keys {
			for _, idx := range []string{"0", "1"} {
				objs[0].Attrs["ONEGATE_LB"+idx+"_"+k] = vals[i]
				objs[0].Attrs["ONEGATE_HAPROXY_LB"+idx+"_"+k] = vals[i]
			}
		}
		check := func(name string, re *regexp.Regexp, conf []byte) {
			for _, line := range strings.Split(string(conf), "\n") {
				if !re.MatchString(line) {
					t.Fatalf("%s: unexpected line %q from %q\n%s", name, line, vals, conf)
				}
			}
		}
		cands, skips := lvs.Family.ParseDynamic(objs, "3", lsp.Topology)
		lbs, _ := lb.Merge(lsp.LBs, cands)
		lbs, _ = lvs.ResolveHosts(context.Background(), noResolve, lbs)
		check("lvs.conf", lvsLine, lvs.Render(lsp, lbs).Config)
		for _, s := range skips {
			if strings.ContainsAny(s.Reason, "\n\r") {
				t.Fatalf("a skip reason carries a line break: %q", s.Reason)
			}
		}
		cands, _ = haproxy.Family.ParseDynamic(objs, "3", hsp.Topology)
		lbs, _ = lb.Merge(hsp.LBs, cands)
		check("servers.cfg", haproxyLine, haproxy.Render(hsp, lbs).Servers)
	})
}
