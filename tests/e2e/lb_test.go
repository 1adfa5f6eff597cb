package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// lbShared: HAProxy balances the public VIP's port 80 to the VM; nothing
// else runs on the data plane.
const lbShared = `export VROUTER_ID="1"
export VROUTER_KEEPALIVED_ID="20"
export VROUTER_KEEPALIVED_PASSWORD="e2elb"
export ONEAPP_VNF_ROUTER4_ENABLED="NO"
export ONEAPP_VNF_HAPROXY_ENABLED="YES"
export ONEAPP_VNF_HAPROXY_LB0_IP="<ETH0_VIP0>"
export ONEAPP_VNF_HAPROXY_LB0_PORT="80"
export ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST="10.0.0.12"
export ONEAPP_VNF_HAPROXY_LB0_SERVER0_PORT="80"
`

// TestHAProxyFailover: one-failover runs one-haproxy (and with it haproxy)
// on the master only; when the master node is lost, the backup takes the
// VIP, starts them, and the load-balanced service answers again.
func TestHAProxyFailover(t *testing.T) {
	h := bootHAWith(t, lbShared, []string{"one-failover", "one-haproxy"}, nil)
	m, err := h.Master(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b := h.Other(m)
	haproxyOn := func(r *lab.Router, want bool) error {
		return r.WaitServices(20*time.Second, want, "one-haproxy", "haproxy")
	}
	for _, c := range []struct {
		r    *lab.Router
		want bool
	}{{m, true}, {b, false}} {
		if err := haproxyOn(c.r, c.want); err != nil {
			t.Fatalf("%v\n%s", err, failoverLog(c.r))
		}
	}
	if out, err := probe(h.Inet, "tcp", lab.PublicVIP+":80", 10*time.Second); err != nil || !strings.Contains(out, "name=vm1") {
		t.Fatalf("the LB on the master: %q %v", out, err)
	}

	if err := m.Lose(); err != nil {
		t.Fatal(err)
	}
	if err := lab.Eventually(15*time.Second, 50*time.Millisecond, func() error {
		if !lab.HasAddr(b, "eth0", lab.PublicVIP) {
			return fmt.Errorf("%s does not hold the public VIP", b.Role)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(b))
	}
	if err := haproxyOn(b, true); err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(b))
	}
	if out, err := probe(h.Inet, "tcp", lab.PublicVIP+":80", 10*time.Second); err != nil || !strings.Contains(out, "name=vm1") {
		t.Fatalf("the LB after the failover: %q %v\n%s", out, err, failoverLog(b))
	}
	// The lost node stops its services once keepalived is gone.
	if err := haproxyOn(m, false); err != nil {
		t.Fatalf("%v\n%s", err, failoverLog(m))
	}
}
