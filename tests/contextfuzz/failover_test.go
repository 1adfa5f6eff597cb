package contextfuzz

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/conntrackd"
	"github.com/hypercx/vrouter/pkg/failover"
	"github.com/hypercx/vrouter/pkg/keepalived"
)

// failoverVars are one-failover's variables: keepalived's, conntrackd's and
// the service switches of its table.
func failoverVars() []string {
	vars := []string{
		keepalived.VarInterfaces, keepalived.VarPassword, keepalived.VarInterval, keepalived.VarPriority, keepalived.VarVRID,
		keepalived.VarNoPreempt, keepalived.VarPreemptDelay, keepalived.VarLegacyPassword, keepalived.VarLegacyVRID,
		conntrackd.VarEnabled, conntrackd.VarInterface,
	}
	for _, nic := range []string{"eth0", "eth1", "eth2", "eth10"} {
		for _, s := range []string{keepalived.SuffixPassword, keepalived.SuffixInterval, keepalived.SuffixPriority,
			keepalived.SuffixVRID, keepalived.SuffixSkip, keepalived.SuffixUnicastPeers} {
			vars = append(vars, keepalived.NICVar(nic, s))
		}
	}
	for _, e := range failover.Table() {
		vars = append(vars, e.Var)
	}
	return append(vars, "ONEAPP_VROUTER_ETH0_VIP1", "ETH1_GATEWAY", "ETH3_VROUTER_IP", "ETH3_GATEWAY")
}

// FuzzFailoverContext: whatever the context, one-failover's render never
// panics and fails only with exit 2 naming a variable.
func FuzzFailoverContext(f *testing.F) {
	fuzzRender(f, failover.Service{}, failoverVars(), failoverSeeds...)
}

var failoverSeeds = []string{
	"a=10\nb=secret\nc=0.1\nd=eth0 eth1",
	"a=YES\nb=eth1\nc=203.0.113.3 203.0.113.2",
	"a=pw}\n\tvirtual_server 1.2.3.4 80 {\nb=x",
	"a=1\nb=0\nc=256\nd=-1\ne=1e3\nf=NaN",
}

// FuzzFailoverConfigInjection: no context value can add a line, a block or
// a setting to keepalived's or conntrackd's rendered configuration.
func FuzzFailoverConfigInjection(f *testing.F) {
	vars := append(failoverVars(), nicVars...)
	for _, s := range failoverSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		rt := &cli.Runtime{Env: envFrom(data, vars), Root: "/nonexistent-fuzz-root", Stdout: &bytes.Buffer{}, Log: slog.New(slog.DiscardHandler)}
		arts, err := failover.Service{}.Render(context.Background(), rt)
		if err != nil {
			return // FuzzFailoverContext judges errors
		}
		for _, a := range arts {
			switch a.Target {
			case keepalived.VRRPFile, conntrackd.ConfigFile:
				checkConfig(t, a.Target, string(a.Body))
			}
		}
	})
}

// keywords that may start a line of the rendered files.
var keywords = regexp.MustCompile(`^(vrrp_sync_group|group|vrrp_instance|state|interface|virtual_router_id|priority|advert_int|version|nopreempt|preempt_delay|track_interface|unicast_src_ip|unicast_peer|virtual_ipaddress|virtual_routes|authentication|auth_type|auth_pass|Sync|Mode|DisableExternalCache|UDP|Multicast|IPv4_address|IPv4_Destination_Address|IPv4_interface|Port|Group|Interface|SndSocketBuffer|RcvSocketBuffer|Checksum|General|HashSize|HashLimit|LogFile|Syslog|LockFile|UNIX|Path|NetlinkBufferSize|NetlinkBufferSizeMaxGrowth|NetlinkOverrunResync|NetlinkEventsReliable|Filter|Protocol|TCP|UDP|ICMP|Address|\})$`)

var member = regexp.MustCompile(`^(eth|ETH)[0-9]+$`)

func checkConfig(t *testing.T, name, body string) {
	t.Helper()
	if strings.Count(body, "{") != strings.Count(body, "}") {
		t.Fatalf("%s: unbalanced braces:\n%s", name, body)
	}
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		first := strings.Fields(l)[0]
		if keywords.MatchString(first) || member.MatchString(first) {
			continue
		}
		if _, err := netip.ParsePrefix(first); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(first); err == nil {
			continue
		}
		t.Fatalf("%s: unexpected line %q:\n%s", name, l, body)
	}
	// The password is the only free text: one token, on its own line.
	for _, l := range strings.Split(body, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "auth_pass" && len(f) != 2 {
			t.Fatalf("%s: auth_pass line %q", name, l)
		}
	}
}
