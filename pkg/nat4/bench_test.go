package nat4

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/pkg/netfilter"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

// BenchmarkPrepare10k is everything one-nat4 start does in-process before
// iptables-restore runs, for 10,000 port forwards: read the env file,
// parse the context, render, validate and build the payload.
func BenchmarkPrepare10k(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("export ETH0_IP=\"203.0.113.1\"\nexport ETH0_MASK=\"255.255.255.0\"\nexport ETH1_IP=\"10.0.0.1\"\nexport ETH1_MASK=\"255.255.255.0\"\n")
	sb.WriteString("export ONEAPP_VNF_NAT4_ENABLED=\"YES\"\nexport ONEAPP_VNF_NAT4_INTERFACES_OUT=\"eth0\"\n")
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&sb, "export ONEAPP_VNF_NAT4_PORT_FWD%d=\"<ETH0_EP0>:%d:10.0.%d.%d:80\"\n", i, 10000+i, i/250, 2+i%250)
	}
	data := []byte(sb.String())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		vars, _ := onecontext.ParseEnvFile(data)
		spec, err := FromContext(onecontext.New(vars))
		if err != nil {
			b.Fatal(err)
		}
		rs := Render(spec)
		if err := rs.Validate(); err != nil {
			b.Fatal(err)
		}
		if len(netfilter.Render(rs)["nat"]) == 0 {
			b.Fatal("empty payload")
		}
	}
}
