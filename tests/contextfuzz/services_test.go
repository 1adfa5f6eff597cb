package contextfuzz

import (
	"testing"

	"github.com/hypercx/vrouter/pkg/conntrackd"
	"github.com/hypercx/vrouter/pkg/dhcp4"
	"github.com/hypercx/vrouter/pkg/dns"
	"github.com/hypercx/vrouter/pkg/failover"
	"github.com/hypercx/vrouter/pkg/keepalived"
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

func FuzzDNSContext(f *testing.F) {
	fuzzRender(f, dns.Service{}, []string{dns.VarEnabled, dns.VarInterfaces, dns.VarAllowedNetworks, dns.VarUseRootServers,
		dns.VarNameservers, dns.VarUpstreamTimeout, dns.VarMaxCacheTTL, dns.VarTCPDisabled, dns.VarUDPDisabled, dns.VarClusterDomain, dns.VarContextDNS},
		"a=YES\nb=eth1\nc=10.0.0.0/24\nd=NO\ne=1.1.1.1@5353", "a=yes\nb=eth0/10.0.0.1@53 !eth1\nf=vr.example")
}

func FuzzDHCP4Context(f *testing.F) {
	fuzzRender(f, dhcp4.Service{}, []string{dhcp4.VarEnabled, dhcp4.VarInterfaces, dhcp4.VarAuthoritative, dhcp4.VarLeaseTime,
		dhcp4.VarDNS, dhcp4.VarGateway, dhcp4.VarMAC2IP, dhcp4.VarMACPrefix, dhcp4.VarNIC + "0", dhcp4.VarNIC + "1",
		dhcp4.VarNIC + "1_GATEWAY", dhcp4.VarNIC + "1_DNS", dhcp4.VarNIC + "1_MTU", dhcp4.VarNIC + "1_LEASE_TIME"},
		"a=YES\nb=eth1\nc=10.0.0.0/24:10.0.0.100-10.0.0.199", "a=YES\nd=<ETH1_VIP0>\ne=02:00")
}

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
