package onegate

import (
	"fmt"
	"net/netip"
	"strings"
)

// None is the ID of an absent object (OpenNebula's own -1): a lease with no
// VM, a network with no parent.
const None = -1

// VRouter is the virtual router this VM belongs to (GET /vrouter).
type VRouter struct {
	ID   int
	Name string
	// VMs are the IDs of the router's VMs (its instances).
	VMs  []int
	NICs []VRouterNIC
	// Template holds the other attributes of the router's template as text
	// (it may hold secrets such as KEEPALIVED_PASSWORD: never log it).
	Template map[string]string
}

// VRouterNIC is one NIC of the virtual router's template.
type VRouterNIC struct {
	NICID     int
	NetworkID int
	Network   string
	// IP is the floating IP when Floating is set.
	IP           netip.Addr
	Floating     bool // FLOATING_IP=YES
	FloatingOnly bool // FLOATING_ONLY=YES
	Management   bool // VROUTER_MANAGEMENT=YES
	Attrs        map[string]string
}

// VNet is a virtual network (GET /vnet/<id>?extended=true).
type VNet struct {
	ID   int
	Name string
	// ParentID is the network this one is a reservation of (None when it
	// is not a reservation). The server puts it under VNET; the original
	// looked for it at the top of the document and never found it.
	ParentID   int
	UsedLeases int
	VRouters   []int
	// Template holds the network attributes OneGate publishes
	// (NETWORK_ADDRESS, NETWORK_MASK, GATEWAY, DNS, GUEST_MTU ...).
	Template map[string]string
	ARs      []AR
}

// AR is an address range of a network.
type AR struct {
	ID   int
	Type string // IP4, IP6, IP4_6, ETHER
	IP   netip.Addr
	MAC  string
	Size int
	// ParentARID is the range of the parent network a reservation's range
	// was taken from (None otherwise).
	ParentARID int
	Leases     []Lease
}

// Lease is one used address of a range, with the per-lease data an extended
// document adds.
type Lease struct {
	IP      netip.Addr
	IP6     netip.Addr // IP6_GLOBAL, else IP6
	MAC     string
	VM      int // the VM holding it, None for a reservation or a router's floating IP
	VNet    int // the reservation (child network) holding it, None otherwise
	VRouter int // the virtual router holding it (a floating IP), None otherwise
	NICName string
	// Parent, ParentNetworkID and External describe a NIC alias: the name
	// of its parent NIC, the network of that NIC, and whether the alias is
	// an external (public) address mapped to the parent NIC's address.
	Parent          string
	ParentNetworkID int
	External        bool
	// Backend is set when the VM's context says BACKEND=YES; OneGate then
	// copies every ONEGATE_* attribute of the VM's user template here.
	Backend bool
	OneGate map[string]string
}

// Leases returns every lease of every range, in order.
func (n *VNet) Leases() []Lease {
	var out []Lease
	for _, ar := range n.ARs {
		out = append(out, ar.Leases...)
	}
	return out
}

// Reservations returns the IDs of the reservations (child networks) holding
// leases of this network, each once, in order.
func (n *VNet) Reservations() []int {
	var out []int
	seen := map[int]bool{}
	for _, ar := range n.ARs {
		for _, l := range ar.Leases {
			if l.VNet != None && !seen[l.VNet] {
				seen[l.VNet] = true
				out = append(out, l.VNet)
			}
		}
	}
	return out
}

// VM is a virtual machine as OneGate shows it (GET /vm, GET /vms/<id>).
type VM struct {
	ID       int
	Name     string
	State    int
	LCMState int
	// UserTemplate is the VM's user template (where ONEGATE_* attributes
	// and what UpdateVM writes live). Vector attributes are kept as their
	// JSON text. It may hold secrets: never log it.
	UserTemplate map[string]string
	NICs         []VMNIC
	Aliases      []VMNIC
}

// VMNIC is a NIC or NIC alias of a VM.
type VMNIC struct {
	Name       string // NIC0, NIC0_ALIAS1
	Network    string
	IP         netip.Addr
	IP6        netip.Addr // IP6_GLOBAL, else IP6_ULA/IP6_SITE
	IP6Link    netip.Addr
	MAC        string
	Parent     string // aliases: the parent NIC's name
	External   bool
	ExternalIP netip.Addr
}

// Service is the OneFlow service this VM belongs to (GET /service).
type Service struct {
	ID    int
	Name  string
	State int
	Roles []Role
}

// Role is a role of a service.
type Role struct {
	Name        string
	Cardinality int
	State       int
	Nodes       []Node
}

// Node is a VM of a role. VM holds what the service document carries about
// it (at least its ID; usually not its user template).
type Node struct {
	DeployID int
	Running  bool
	VM       VM
}

// VMID is the node's VM ID (vm_info.VM.ID, else deploy_id).
func (n Node) VMID() int {
	if n.VM.ID != None {
		return n.VM.ID
	}
	return n.DeployID
}

// VMIDs returns the IDs of the service's VMs, each once, in role order.
func (s *Service) VMIDs() []int {
	var out []int
	seen := map[int]bool{}
	for _, r := range s.Roles {
		for _, n := range r.Nodes {
			if id := n.VMID(); id != None && !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}

// DecodeVRouter decodes a vrouter document.
func DecodeVRouter(data []byte) (*VRouter, error) {
	m, err := decodeRoot(data, "vrouter", "VROUTER")
	if err != nil {
		return nil, err
	}
	vr := &VRouter{ID: id(m["ID"]), Name: str(m["NAME"]), VMs: ids(obj(m["VMS"])["ID"])}
	tmpl := obj(m["TEMPLATE"])
	for _, e := range list(tmpl["NIC"]) {
		n := obj(e)
		vr.NICs = append(vr.NICs, VRouterNIC{
			NICID:        id(n["NIC_ID"]),
			NetworkID:    id(n["NETWORK_ID"]),
			Network:      str(n["NETWORK"]),
			IP:           addr(n["IP"]),
			Floating:     yes(n["FLOATING_IP"]),
			FloatingOnly: yes(n["FLOATING_ONLY"]),
			Management:   yes(n["VROUTER_MANAGEMENT"]),
			Attrs:        scalars(n),
		})
	}
	vr.Template = scalars(tmpl)
	delete(vr.Template, "NIC")
	return vr, nil
}

// DecodeVNet decodes a vnet document (extended or not).
func DecodeVNet(data []byte) (*VNet, error) {
	m, err := decodeRoot(data, "vnet", "VNET")
	if err != nil {
		return nil, err
	}
	n := &VNet{
		ID:         id(m["ID"]),
		Name:       str(m["NAME"]),
		ParentID:   id(m["PARENT_NETWORK_ID"]),
		UsedLeases: num(m["USED_LEASES"], 0),
		VRouters:   ids(obj(m["VROUTERS"])["ID"]),
		Template:   scalars(obj(m["TEMPLATE"])),
	}
	if n.ID == None {
		return nil, fmt.Errorf("decoding vnet document: no VNET.ID")
	}
	for _, e := range list(obj(m["AR_POOL"])["AR"]) {
		a := obj(e)
		ar := AR{
			ID:         id(a["AR_ID"]),
			Type:       str(a["TYPE"]),
			IP:         addr(a["IP"]),
			MAC:        str(a["MAC"]),
			Size:       num(a["SIZE"], 0),
			ParentARID: id(a["PARENT_NETWORK_AR_ID"]),
		}
		for _, le := range list(obj(a["LEASES"])["LEASE"]) {
			ar.Leases = append(ar.Leases, decodeLease(obj(le)))
		}
		n.ARs = append(n.ARs, ar)
	}
	return n, nil
}

func decodeLease(l map[string]any) Lease {
	ip6 := addr(l["IP6_GLOBAL"])
	if !ip6.IsValid() {
		ip6 = addr(l["IP6"])
	}
	return Lease{
		IP:              addr(l["IP"]),
		IP6:             ip6,
		MAC:             strings.ToLower(str(l["MAC"])),
		VM:              id(l["VM"]),
		VNet:            id(l["VNET"]),
		VRouter:         id(l["VROUTER"]),
		NICName:         str(l["NIC_NAME"]),
		Parent:          str(l["PARENT"]),
		ParentNetworkID: id(l["PARENT_NETWORK_ID"]),
		External:        yes(l["EXTERNAL"]),
		Backend:         yes(l["BACKEND"]),
		OneGate:         prefixed(l, "ONEGATE_"),
	}
}

// DecodeVM decodes a vm document.
func DecodeVM(data []byte) (*VM, error) {
	m, err := decodeRoot(data, "vm", "VM")
	if err != nil {
		return nil, err
	}
	vm := decodeVM(m)
	if vm.ID == None {
		return nil, fmt.Errorf("decoding vm document: no VM.ID")
	}
	return &vm, nil
}

func decodeVM(m map[string]any) VM {
	vm := VM{
		ID:           id(m["ID"]),
		Name:         str(m["NAME"]),
		State:        num(m["STATE"], None),
		LCMState:     num(m["LCM_STATE"], None),
		UserTemplate: scalars(obj(m["USER_TEMPLATE"])),
	}
	tmpl := obj(m["TEMPLATE"])
	for _, e := range list(tmpl["NIC"]) {
		vm.NICs = append(vm.NICs, decodeVMNIC(obj(e)))
	}
	for _, e := range list(tmpl["NIC_ALIAS"]) {
		vm.Aliases = append(vm.Aliases, decodeVMNIC(obj(e)))
	}
	return vm
}

func decodeVMNIC(n map[string]any) VMNIC {
	ip6 := addr(n["IP6_GLOBAL"])
	if !ip6.IsValid() {
		ip6 = addr(n["IP6_ULA"])
	}
	if !ip6.IsValid() {
		ip6 = addr(n["IP6_SITE"])
	}
	return VMNIC{
		Name:       str(n["NAME"]),
		Network:    str(n["NETWORK"]),
		IP:         addr(n["IP"]),
		IP6:        ip6,
		IP6Link:    addr(n["IP6_LINK"]),
		MAC:        strings.ToLower(str(n["MAC"])),
		Parent:     str(n["PARENT"]),
		External:   yes(n["EXTERNAL"]),
		ExternalIP: addr(n["EXTERNAL_IP"]),
	}
}

// DecodeService decodes a service document.
func DecodeService(data []byte) (*Service, error) {
	m, err := decodeRoot(data, "service", "SERVICE")
	if err != nil {
		return nil, err
	}
	s := &Service{ID: id(m["id"]), Name: str(m["name"]), State: num(m["state"], None)}
	for _, e := range list(m["roles"]) {
		r := obj(e)
		role := Role{Name: str(r["name"]), Cardinality: num(r["cardinality"], 0), State: num(r["state"], None)}
		for _, ne := range list(r["nodes"]) {
			nd := obj(ne)
			info := obj(obj(nd["vm_info"])["VM"])
			role.Nodes = append(role.Nodes, Node{
				DeployID: id(nd["deploy_id"]),
				Running:  yes(nd["running"]),
				VM:       decodeVM(info),
			})
		}
		s.Roles = append(s.Roles, role)
	}
	return s, nil
}

// decodeRoot parses data and returns the object under key, with errors that
// name the document.
func decodeRoot(data []byte, doc, key string) (map[string]any, error) {
	tree, err := parseTree(data)
	if err != nil {
		return nil, fmt.Errorf("decoding %s document: %w", doc, err)
	}
	m, err := root(tree, key)
	if err != nil {
		return nil, fmt.Errorf("decoding %s document: %w", doc, err)
	}
	return m, nil
}
