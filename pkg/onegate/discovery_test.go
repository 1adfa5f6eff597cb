package onegate_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/onegate"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

func netIDs(nets []onegate.VNet) []int {
	var out []int
	for _, n := range nets {
		out = append(out, n.ID)
	}
	return out
}

// vrouterDoc is a router whose NICs are on networks.
func vrouterDoc(networks ...int) []byte {
	var nics []string
	for i, n := range networks {
		nics = append(nics, fmt.Sprintf(`{"NIC_ID": "%d", "NETWORK_ID": "%d"}`, i, n))
	}
	return []byte(`{"VROUTER": {"ID": "3", "NAME": "vr", "VMS": {"ID": ["10"]}, "TEMPLATE": {"NIC": [` + strings.Join(nics, ",") + `]}}}`)
}

// vnetDoc is a network with a parent and leases held by child networks.
func vnetDoc(id, parent int, children ...int) []byte {
	p := `{}`
	if parent != onegate.None {
		p = fmt.Sprintf(`"%d"`, parent)
	}
	var leases []string
	for i, c := range children {
		leases = append(leases, fmt.Sprintf(`{"IP": "192.0.2.%d", "VNET": "%d"}`, i+1, c))
	}
	return []byte(fmt.Sprintf(`{"VNET": {"ID": "%d", "NAME": "n%d", "PARENT_NETWORK_ID": %s, "AR_POOL": {"AR": {"AR_ID": "0", "LEASES": {"LEASE": [%s]}}}}}`, id, id, p, strings.Join(leases, ",")))
}

func TestNetworksFixtures(t *testing.T) {
	l := newLab(t)
	nets, err := l.client.Networks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// NIC 0's network, then its reservation 2, then NIC 1's network.
	if diff := cmp.Diff([]int{0, 2, 1}, netIDs(nets)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	res := nets[1]
	if res.ParentID != 0 || res.ARs[0].ParentARID != 0 || len(res.Leases()) != 1 {
		t.Errorf("reservation: %+v", res)
	}
	// The EXTERNAL alias of VM 21 in the reservation, with its parent NIC's
	// network: what SDNAT4 maps.
	want := onegate.Lease{
		IP: netip.MustParseAddr("203.0.113.50"), MAC: "02:00:cb:00:71:32", VM: 21, VNet: onegate.None, VRouter: onegate.None,
		NICName: "NIC0_ALIAS1", Parent: "NIC0", ParentNetworkID: 1, External: true, Backend: true,
		OneGate: map[string]string{"ONEGATE_LB0_IP": "<ETH0_EP0>", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "10.0.1.21", "ONEGATE_LB0_SERVER_PORT": "8080", "ONEGATE_LB0_SERVER_WEIGHT": "2"},
	}
	if diff := cmp.Diff(want, res.Leases()[0], addrs); diff != "" {
		t.Errorf("reservation lease (-want +got):\n%s", diff)
	}
	if got := nets[0].Reservations(); !cmp.Equal(got, []int{2}) {
		t.Errorf("Reservations of public: %v", got)
	}
	if n := l.requests("/vnet/"); n != 3 {
		t.Errorf("%d vnet requests for 3 networks", n)
	}
}

func TestNetworksFollowParentsAndChildren(t *testing.T) {
	for _, tc := range []struct {
		name    string
		router  []int
		vnets   map[int][]byte
		max     int
		want    []int
		wantErr string
	}{{
		name:   "parent of a reservation (original bug §14.11)",
		router: []int{5},
		vnets:  map[int][]byte{5: vnetDoc(5, 6), 6: vnetDoc(6, onegate.None, 5, 7), 7: vnetDoc(7, 6)},
		want:   []int{5, 6, 7},
	}, {
		name:   "cycle between two networks",
		router: []int{5},
		vnets:  map[int][]byte{5: vnetDoc(5, 6, 6), 6: vnetDoc(6, 5, 5)},
		want:   []int{5, 6},
	}, {
		name:   "self cycle and shared networks",
		router: []int{5, 6, 5},
		vnets:  map[int][]byte{5: vnetDoc(5, 5, 5, 6), 6: vnetDoc(6, onegate.None, 5)},
		want:   []int{5, 6},
	}, {
		name:    "bounded",
		router:  []int{5},
		vnets:   map[int][]byte{5: vnetDoc(5, onegate.None, 6, 7), 6: vnetDoc(6, 5), 7: vnetDoc(7, 5)},
		max:     2,
		wantErr: "more than 2 networks",
	}, {
		name:   "no NICs",
		router: nil,
		want:   nil,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, func(c *onegate.Config) { c.MaxNetworks = tc.max })
			l.sim.SetDocument("vrouter", vrouterDoc(tc.router...))
			for id, doc := range tc.vnets {
				l.sim.SetDocument(fmt.Sprintf("vnet-%d", id), doc)
			}
			nets, err := l.client.Networks(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || nets != nil {
					t.Fatalf("got %v, %v; want error %q", netIDs(nets), err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, netIDs(nets)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if n := l.requests("/vnet/"); n != len(tc.want) {
				t.Errorf("%d vnet requests for %d networks", n, len(tc.want))
			}
		})
	}
}

func TestNetworksRefusedAndFailing(t *testing.T) {
	ctx := context.Background()
	// A followed network OneGate refuses to show is skipped.
	l := newLab(t)
	l.sim.Inject(sim.Fault{Path: "/vnet/2", Status: 400})
	nets, err := l.client.Networks(ctx)
	if err != nil || !cmp.Equal(netIDs(nets), []int{0, 1}) {
		t.Errorf("refused reservation: %v, %v", netIDs(nets), err)
	}
	if !strings.Contains(l.logs.String(), "skipping") {
		t.Error("the skipped network is not logged")
	}
	// A forbidden one, or a router NIC's own network, fails the call: an
	// empty answer must not pass for "no networks".
	for _, f := range []sim.Fault{{Path: "/vnet/2", Status: 403}, {Path: "/vnet/1", Status: 404}, {Path: "/vrouter", Status: 401}} {
		l := newLab(t)
		l.sim.Inject(f)
		if nets, err := l.client.Networks(ctx); err == nil || nets != nil || errors.Is(err, onegate.ErrStale) {
			t.Errorf("%+v: %v, %v", f, netIDs(nets), err)
		}
	}
}

func TestServiceVMs(t *testing.T) {
	l := newLab(t)
	vms, err := l.client.ServiceVMs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, vm := range vms {
		ids = append(ids, vm.ID)
	}
	if diff := cmp.Diff([]int{10, 11, 21, 22}, ids); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if vms[3].UserTemplate["ONEGATE_HAPROXY_LB0_SERVER_PORT"] != "8443" {
		t.Errorf("VM 22 user template: %v", vms[3].UserTemplate)
	}
	// A VM that left the service meanwhile is skipped.
	l.sim.Inject(sim.Fault{Path: "/vms/21", Status: 404})
	vms, err = l.client.ServiceVMs(context.Background())
	if err != nil || len(vms) != 3 {
		t.Errorf("VM 21 gone: %d VMs, %v", len(vms), err)
	}
}
