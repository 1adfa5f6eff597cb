package failover

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/pkg/keepalived"
)

// install gives an empty image keepalived files that float nothing, replaces
// a distro sample keepalived.conf, and keeps a configuration one-failover
// already rendered.
func TestInstallNeutralKeepalived(t *testing.T) {
	r := newRig(t)
	rt := r.runtime("")
	if _, err := r.root.WriteFile(keepalived.MainFile, []byte("vrrp_instance VI_1 {\n virtual_ipaddress {\n  192.168.200.16\n }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Install(context.Background(), rt); err != nil {
		t.Fatal(err)
	}
	main, _ := r.root.ReadFile(keepalived.MainFile)
	vrrp, _ := r.root.ReadFile(keepalived.VRRPFile)
	if bytes.Contains(main, []byte("192.168.200.16")) || !strings.Contains(string(vrrp), "No VRRP instance") {
		t.Fatalf("not neutral:\n%s\n%s", main, vrrp)
	}
	// A rendered configuration stays.
	if err := r.configure(t, floating); err != nil {
		t.Fatal(err)
	}
	before, _ := r.root.ReadFile(keepalived.VRRPFile)
	if err := r.svc.Install(context.Background(), rt); err != nil {
		t.Fatal(err)
	}
	if after, _ := r.root.ReadFile(keepalived.VRRPFile); !bytes.Equal(before, after) || !bytes.Contains(after, []byte("10.0.0.1")) {
		t.Fatalf("install replaced the rendered configuration:\n%s", after)
	}
}
