package contextfuzz

import (
	"testing"

	"github.com/hypercx/vrouter/pkg/conntrackd"
	"github.com/hypercx/vrouter/pkg/failover"
	"github.com/hypercx/vrouter/pkg/keepalived"
)

func FuzzFailoverContext(f *testing.F) {
	vars := []string{keepalived.VarInterfaces, keepalived.VarVRID, keepalived.VarPriority, keepalived.VarInterval, keepalived.VarPassword,
		keepalived.VarNoPreempt, keepalived.VarPreemptDelay, keepalived.VarLegacyVRID, keepalived.VarLegacyPassword,
		"ONEAPP_VNF_KEEPALIVED_ETH1_VRID", "ONEAPP_VNF_KEEPALIVED_ETH1_PRIORITY", "ONEAPP_VNF_KEEPALIVED_ETH0_SKIP",
		"ONEAPP_VNF_KEEPALIVED_ETH1_UNICAST_PEERS", conntrackd.VarEnabled, conntrackd.VarInterface}
	for _, e := range failover.Table() {
		vars = append(vars, e.Var)
	}
	fuzzRender(f, failover.Service{}, vars,
		"a=eth0 eth1\nb=20\nc=150\nd=0.1", "e=secret\nf=YES\ng=30\nh=YES\ni=eth1")
}
