package contextfuzz

import (
	"testing"

	"github.com/hypercx/vrouter/pkg/dns"
)

// FuzzDNSContext: one-dns's parsing never panics and rejects only with an
// error naming the variable (exit 2).
func FuzzDNSContext(f *testing.F) {
	fuzzRender(f, dns.Service{}, []string{dns.VarEnabled, dns.VarInterfaces, dns.VarMaxCacheTTL, dns.VarUseRootServers,
		dns.VarNameservers, dns.VarUpstreamTimeout, dns.VarAllowedNetworks, dns.VarTCPDisabled, dns.VarUDPDisabled,
		dns.VarClusterDomain},
		"a=YES\nb=eth1\nc=1.1.1.1@5353 8.8.8.8\nd=10.0.0.0/24",
		"a=YES\nb=eth0/203.0.113.2@5300 !eth1\nc=NO\nd=Cloud.Example.\ne=2500",
		"a=YES\nb=10.0.0.1\nc=no\nd=YES\ne=YES\nf=vr.\nlocal-zone: x")
}
