package dns

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/onecontext"
)

func TestServed(t *testing.T) {
	base := []string{"ETH0_IP=203.0.113.1", "ETH1_IP=10.0.0.1", "ONEAPP_VROUTER_ETH1_VIP0=10.0.0.254", "ETH2_IP=192.168.9.1",
		"ETH2_VROUTER_MANAGEMENT=YES", "ETH3_VROUTER_IP=172.20.0.1", "ETH4="}
	for _, c := range []struct {
		name  string
		extra []string
		nics  []string
		addrs map[string][]string
		fails bool
	}{
		{name: "disabled", nics: nil, addrs: map[string][]string{}},
		{name: "all", extra: []string{"ONEAPP_VNF_DNS_ENABLED=YES"}, nics: []string{"eth0", "eth1", "eth3"},
			addrs: map[string][]string{"eth0": {"203.0.113.1"}, "eth1": {"10.0.0.254", "10.0.0.1"}, "eth3": {"172.20.0.1"}}},
		{name: "guide", extra: []string{"ONEAPP_VNF_DNS_ENABLED=YES", "ONEAPP_VNF_DNS_INTERFACES=eth1"}, nics: []string{"eth1"},
			addrs: map[string][]string{"eth1": {"10.0.0.254", "10.0.0.1"}}},
		{name: "other port only", extra: []string{"ONEAPP_VNF_DNS_ENABLED=YES", "ONEAPP_VNF_DNS_INTERFACES=eth1@5353 eth0/203.0.113.1"},
			nics: []string{"eth0"}, addrs: map[string][]string{"eth0": {"203.0.113.1"}}},
		{name: "management only", extra: []string{"ONEAPP_VNF_DNS_ENABLED=YES", "ONEAPP_VNF_DNS_INTERFACES=eth2"}, addrs: map[string][]string{}},
		// An unrelated bad DNS variable does not fail the question.
		{name: "bad ttl", extra: []string{"ONEAPP_VNF_DNS_ENABLED=YES", "ONEAPP_VNF_DNS_INTERFACES=eth1/10.0.0.1", "ONEAPP_VNF_DNS_MAX_CACHE_TTL=x"},
			nics: []string{"eth1"}, addrs: map[string][]string{"eth1": {"10.0.0.1"}}},
		{name: "bad list", extra: []string{"ONEAPP_VNF_DNS_ENABLED=YES", "ONEAPP_VNF_DNS_INTERFACES=eth9"}, fails: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := onecontext.FromPairs(append(append([]string{}, base...), c.extra...)...)
			nics, err := ServedNICs(env)
			if c.fails {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.nics, nics); d != "" {
				t.Errorf("NICs (-want +got):\n%s", d)
			}
			m, _ := ServedAddrs(env)
			got := map[string][]string{}
			for k, v := range m {
				for _, a := range v {
					got[k] = append(got[k], a.String())
				}
			}
			if d := cmp.Diff(c.addrs, got); d != "" {
				t.Errorf("addresses (-want +got):\n%s", d)
			}
		})
	}
}
