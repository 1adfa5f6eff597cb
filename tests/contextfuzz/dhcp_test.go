package contextfuzz

import (
	"testing"

	"github.com/hypercx/vrouter/pkg/dhcp4"
	"github.com/hypercx/vrouter/pkg/dns"
)

// FuzzDHCPContext: one-dhcp4v2's parsing never panics and rejects only with
// an error naming the variable (exit 2). one-dns's switch and NICs are in
// the mix: they decide the default DNS option.
func FuzzDHCPContext(f *testing.F) {
	fuzzRender(f, dhcp4.Service{}, []string{dhcp4.VarEnabled, dhcp4.VarInterfaces, dhcp4.VarAuthoritative, dhcp4.VarLeaseTime,
		dhcp4.VarDNS, dhcp4.VarGateway, dhcp4.VarMAC2IP, dhcp4.VarMACPrefix,
		dhcp4.VarNIC + "0", dhcp4.VarNIC + "1", dhcp4.VarNIC + "10", dhcp4.VarNIC + "1_DNS", dhcp4.VarNIC + "1_GATEWAY",
		dhcp4.VarNIC + "1_MTU", dhcp4.VarNIC + "1_LEASE_TIME", dhcp4.VarNIC + "0_MTU",
		dns.VarEnabled, dns.VarInterfaces},
		"a=YES\nb=eth1\nc=<ETH1_EP0>\nd=10.0.0.0/24:10.0.0.100-10.0.0.200\ne=1400",
		"a=YES\nb=!eth0\nc=NO\nd=aa:bb\ne=10.0.0.0/24:10.0.0.9-10.0.0.1\nf=10",
		"a=YES\nb=eth1;eth0\nc=1.1.1.1,<ETH1_VIP0>\nd=0.0.0.0/0\ne=YES\nf=eth1/10.0.0.1")
}
