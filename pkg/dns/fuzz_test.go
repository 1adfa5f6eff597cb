package dns

import (
	"regexp"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/pkg/onecontext"
)

// configLine is every shape of line unbound.conf may have: whatever the
// context holds, a value can only ever fill a value, never add a line, a
// clause or a second setting.
var configLine = regexp.MustCompile(`^(|#[^\n]*|server:|remote-control:|forward-zone:|    #[^\n]*|` +
	`    (interface|forward-addr): [0-9.]+(@[0-9]+)?|` +
	`    access-control: [0-9a-f.:]+/[0-9]+ (allow|refuse)|` +
	`    local-zone: "[a-z0-9.-]+\." static|` +
	`    local-data: "[a-z0-9.-]+\. IN A [0-9.]+"|` +
	`    (unknown-server-time-limit|cache-max-ttl|cache-min-ttl|verbosity): [0-9]+|` +
	`    [a-z0-9-]+: (yes|no|"[a-z/._-]*"|\.|"\."))$`)

func FuzzRender(f *testing.F) {
	f.Add("eth1", "1.1.1.1@5353", "10.0.0.0/24", "vr", "1128", "YES")
	f.Add("eth0/10.0.0.1@53 !eth1", "", "", "Cloud.Example.", "", "NO")
	f.Add("10.0.0.1\ninterface: 0.0.0.0", "1.1.1.1\nforward-addr: 6.6.6.6", "0.0.0.0/0\"", "vr\"\nlocal-zone: x", "1\n", "no")
	f.Fuzz(func(t *testing.T, ifaces, ns, nets, domain, timeout, roots string) {
		env := onecontext.FromPairs("ETH0_IP=10.0.0.1", "ETH0_MASK=255.255.255.0", "ETH1_IP=192.168.1.1",
			"ONEAPP_VROUTER_ETH1_VIP0=192.168.1.254", "ETH1_DNS=8.8.8.8", "ONEAPP_VNF_DNS_ENABLED=YES").With(
			VarInterfaces+"="+ifaces, VarNameservers+"="+ns, VarAllowedNetworks+"="+nets,
			VarClusterDomain+"="+domain, VarUpstreamTimeout+"="+timeout, VarUseRootServers+"="+roots)
		sp, err := FromContext(env)
		if err != nil {
			return
		}
		sp.RootHints = RootHintsFiles[0]
		for _, l := range strings.Split(strings.TrimSuffix(string(Render(sp).Config), "\n"), "\n") {
			if !configLine.MatchString(l) {
				t.Fatalf("unexpected line %q", l)
			}
		}
	})
}
