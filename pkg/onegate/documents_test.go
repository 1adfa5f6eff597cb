package onegate_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/onegate"
)

// OneGate's JSON is XML turned into hashes; every spelling below occurs (or
// could, from another OpenNebula version) and must read the same.
func TestDecodeVNetTolerant(t *testing.T) {
	want := onegate.Lease{
		IP: netip.MustParseAddr("10.0.0.5"), MAC: "02:00:0a:00:00:05", VM: 7, VNet: onegate.None, VRouter: onegate.None,
		Parent: "NIC0", ParentNetworkID: 3, External: true,
	}
	for name, doc := range map[string]string{
		"strings and arrays": `{"VNET": {"ID": "4", "PARENT_NETWORK_ID": "", "AR_POOL": {"AR": [{"AR_ID": "0", "LEASES": {"LEASE": [
			{"IP": "10.0.0.5", "MAC": "02:00:0A:00:00:05", "VM": "7", "PARENT": "NIC0", "PARENT_NETWORK_ID": "3", "EXTERNAL": true}]}}]}}}`,
		"numbers and single objects": `{"VNET": {"ID": 4, "PARENT_NETWORK_ID": {}, "AR_POOL": {"AR": {"AR_ID": 0, "LEASES": {"LEASE":
			{"IP": "10.0.0.5", "MAC": "02:00:0a:00:00:05", "VM": 7, "PARENT": "NIC0", "PARENT_NETWORK_ID": 3, "EXTERNAL": "YES"}}}}}}`,
		"external as text true": `{"VNET": {"ID": "4", "AR_POOL": {"AR": {"LEASES": {"LEASE":
			{"IP": " 10.0.0.5 ", "MAC": "02:00:0a:00:00:05", "VM": "7", "PARENT": "NIC0", "PARENT_NETWORK_ID": "3", "EXTERNAL": "true"}}}}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			n, err := onegate.DecodeVNet([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if n.ID != 4 || n.ParentID != onegate.None || len(n.Leases()) != 1 {
				t.Fatalf("vnet: %+v", n)
			}
			if diff := cmp.Diff(want, n.Leases()[0], addrs); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// Wrong shapes read as absent, never a panic.
	n, err := onegate.DecodeVNet([]byte(`{"VNET": {"ID": "4", "NAME": {"x": 1}, "VROUTERS": "", "AR_POOL": {"AR": ["junk", {"LEASES": "",
		"IP": "not-an-ip", "SIZE": "many"}, {"LEASES": {"LEASE": [null, 5, {"VM": "-1", "VNET": "x", "EXTERNAL": "NO", "ONEGATE_A": 1}]}}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	l := n.Leases()
	if n.Name != "" || len(n.ARs) != 3 || n.ARs[1].IP.IsValid() || n.ARs[1].Size != 0 || len(l) != 3 {
		t.Fatalf("wrong shapes: %+v", n)
	}
	if last := l[2]; last.VM != onegate.None || last.VNet != onegate.None || last.External || last.OneGate["ONEGATE_A"] != "1" {
		t.Errorf("lease: %+v", last)
	}
}

func TestDecodeErrorsNameTheDocument(t *testing.T) {
	for _, tc := range []struct {
		decode func([]byte) error
		doc    string
	}{
		{func(b []byte) error { _, err := onegate.DecodeVNet(b); return err }, "vnet"},
		{func(b []byte) error { _, err := onegate.DecodeVRouter(b); return err }, "vrouter"},
		{func(b []byte) error { _, err := onegate.DecodeVM(b); return err }, "vm"},
		{func(b []byte) error { _, err := onegate.DecodeService(b); return err }, "service"},
	} {
		for _, in := range []string{``, `{`, `[]`, `{"OTHER": {}}`, `{"VNET": {}} {}`, `"x"`, `null`} {
			err := tc.decode([]byte(in))
			if err == nil || !strings.HasPrefix(err.Error(), "decoding "+tc.doc+" document: ") {
				t.Errorf("%s %q: %v", tc.doc, in, err)
			}
		}
	}
}

func TestDecodeOthers(t *testing.T) {
	vr, err := onegate.DecodeVRouter([]byte(`{"VROUTER": {"ID": "3", "NAME": "vr", "VMS": {"ID": "10"}, "TEMPLATE": {"KEEPALIVED_ID": 9,
		"NIC": {"NIC_ID": "0", "NETWORK_ID": "2", "NETWORK": "pub", "FLOATING_IP": "yes", "IP": "198.51.100.1", "VROUTER_MANAGEMENT": "NO"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	wantNIC := onegate.VRouterNIC{NICID: 0, NetworkID: 2, Network: "pub", IP: netip.MustParseAddr("198.51.100.1"), Floating: true,
		Attrs: map[string]string{"NIC_ID": "0", "NETWORK_ID": "2", "NETWORK": "pub", "FLOATING_IP": "yes", "IP": "198.51.100.1", "VROUTER_MANAGEMENT": "NO"}}
	if vr.ID != 3 || !cmp.Equal(vr.VMs, []int{10}) || vr.Template["KEEPALIVED_ID"] != "9" || len(vr.NICs) != 1 {
		t.Fatalf("vrouter: %+v", vr)
	}
	if diff := cmp.Diff(wantNIC, vr.NICs[0], addrs); diff != "" {
		t.Errorf("NIC (-want +got):\n%s", diff)
	}
	vm, err := onegate.DecodeVM([]byte(`{"VM": {"ID": "21", "NAME": "b", "STATE": "3", "USER_TEMPLATE": {"A": "x", "N": 5, "V": {"K": "v"}},
		"TEMPLATE": {"NIC": {"NAME": "NIC0", "IP": "10.0.1.21", "MAC": "02:00:0A:00:01:15"}, "NIC_ALIAS": []}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if vm.ID != 21 || vm.State != 3 || vm.LCMState != onegate.None || !cmp.Equal(vm.UserTemplate, map[string]string{"A": "x", "N": "5", "V": `{"K":"v"}`}) ||
		len(vm.NICs) != 1 || vm.NICs[0].MAC != "02:00:0a:00:01:15" || len(vm.Aliases) != 0 {
		t.Errorf("vm: %+v", vm)
	}
	svc, err := onegate.DecodeService([]byte(`{"SERVICE": {"id": "7", "roles": {"name": "r", "nodes": [
		{"deploy_id": 5, "vm_info": {"VM": {"ID": "5"}}}, {"deploy_id": "6"}, {"deploy_id": 5, "vm_info": {"VM": {"ID": 5}}}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if svc.ID != 7 || !cmp.Equal(svc.VMIDs(), []int{5, 6}) {
		t.Errorf("service: %+v, VMIDs %v", svc, svc.VMIDs())
	}
}

// FuzzDecode feeds any bytes to every decoder: an error or a document,
// never a panic, and a decoded vnet's helpers work on it.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("../../tests/onegatesim/testdata/*.json")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		`{"VNET": {"ID": "1", "AR_POOL": {"AR": {"LEASES": {"LEASE": {"VM": 1, "EXTERNAL": "YES", "ONEGATE_X": {}}}}}}}`,
		`{"VNET": {"ID": 1, "AR_POOL": [[[]]]}}`, `{"VNET": null}`, `{"VM": {"ID": "1e400"}}`, `{"SERVICE": {"roles": [{"nodes": {}}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if n, err := onegate.DecodeVNet(data); err == nil {
			_ = n.Leases()
			_ = n.Reservations()
		} else if n != nil {
			t.Fatal("a document with an error")
		}
		_, _ = onegate.DecodeVRouter(data)
		_, _ = onegate.DecodeVM(data)
		if s, err := onegate.DecodeService(data); err == nil {
			_ = s.VMIDs()
		}
	})
}
