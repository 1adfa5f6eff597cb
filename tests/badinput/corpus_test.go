package badinput

// The corpus: for each service, contexts it must refuse. Each case is the
// good context (good, every fragment) with Set applied; every verb that
// reads the context (configure, start, render) must exit 2 with a message
// naming Var, and leave the kernel, the daemons' files and the running
// services exactly as they were.
//
// A service plugs in by filling its entry: its fragment of the good context
// (the service enabled, so that its variables are read), its binary among
// installed (tests/badinput/badinput_test.go), and its cases.

// badCase is one malformed context.
type badCase struct {
	Name string
	// Set are NAME=value pairs over the good context ("NAME=" empties).
	Set []string
	// Var is the variable the error must name.
	Var string
}

// good is the context the router runs before each case, per service.
var good = map[string]string{
	"one-failover": `export VROUTER_ID="1"
export VROUTER_KEEPALIVED_ID="30"
export VROUTER_KEEPALIVED_PASSWORD="badinput"
`,
	"one-router4": `export ONEAPP_VNF_ROUTER4_ENABLED="YES"
`,
	"one-nat4": `export ONEAPP_VNF_NAT4_ENABLED="YES"
export ONEAPP_VNF_NAT4_INTERFACES_OUT="eth0"
export ONEAPP_VNF_NAT4_PORT_FWD0="<ETH0_VIP0>:8080:10.0.0.12:80"
`,
	"one-dns": `export ONEAPP_VNF_DNS_ENABLED="YES"
export ONEAPP_VNF_DNS_INTERFACES="eth1"
export ONEAPP_VNF_DNS_USE_ROOTSERVERS="NO"
export ONEAPP_VNF_DNS_NAMESERVERS="203.0.113.100"
`,
	"one-dhcp4v2": `export ONEAPP_VNF_DHCP4_ENABLED="YES"
export ONEAPP_VNF_DHCP4_INTERFACES="eth1"
export ONEAPP_VNF_DHCP4_ETH1="10.0.0.0/24:10.0.0.100-10.0.0.199"
`,
	"one-wg": `export ONEAPP_VNF_WG_ENABLED="YES"
export ONEAPP_VNF_WG_INTERFACE_OUT="eth0"
export ONEAPP_VNF_WG_INTERFACE_IN="eth1"
`,
	// TODO(one-sdnat4, one-lvs, one-haproxy): their fragments.
}

var corpus = map[string][]badCase{
	"one-router4": {
		{"not a boolean", []string{"ONEAPP_VNF_ROUTER4_ENABLED=maybe"}, "ONEAPP_VNF_ROUTER4_ENABLED"},
		{"unknown NIC", []string{"ONEAPP_VNF_ROUTER4_INTERFACES=eth9"}, "ONEAPP_VNF_ROUTER4_INTERFACES"},
		{"address no NIC holds", []string{"ONEAPP_VNF_ROUTER4_INTERFACES=10.9.9.9"}, "ONEAPP_VNF_ROUTER4_INTERFACES"},
		{"shell in a list", []string{"ONEAPP_VNF_ROUTER4_INTERFACES=eth0;touch /tmp/badinput-pwned"}, "ONEAPP_VNF_ROUTER4_INTERFACES"},
	},
	"one-nat4": {
		{"on is not a boolean", []string{"ONEAPP_VNF_NAT4_ENABLED=on"}, "ONEAPP_VNF_NAT4_ENABLED"},
		{"unknown outgoing NIC", []string{"ONEAPP_VNF_NAT4_INTERFACES_OUT=eth7"}, "ONEAPP_VNF_NAT4_INTERFACES_OUT"},
		{"hex port", []string{"ONEAPP_VNF_NAT4_PORT_FWD0=0x1F:10.0.0.12"}, "ONEAPP_VNF_NAT4_PORT_FWD0"},
		{"bad target", []string{"ONEAPP_VNF_NAT4_PORT_FWD1=80:10.0.0.300"}, "ONEAPP_VNF_NAT4_PORT_FWD1"},
		{"placeholder to nothing", []string{"ONEAPP_VNF_NAT4_PORT_FWD2=<ETH5_VIP0>:80:10.0.0.12"}, "ONEAPP_VNF_NAT4_PORT_FWD2"},
		{"port out of range", []string{"ONEAPP_VNF_NAT4_PORT_FWD3=70000:10.0.0.12"}, "ONEAPP_VNF_NAT4_PORT_FWD3"},
		{"second forward bad, first good", []string{"ONEAPP_VNF_NAT4_PORT_FWD1=2222:10.0.0.12:22", "ONEAPP_VNF_NAT4_PORT_FWD12=80:10.0.0.12:-5"}, "ONEAPP_VNF_NAT4_PORT_FWD12"},
		{"command substitution is data", []string{"ONEAPP_VNF_NAT4_INTERFACES_OUT=$(touch /tmp/badinput-pwned)"}, "ONEAPP_VNF_NAT4_INTERFACES_OUT"},
	},
	"one-dns": {
		{"not a boolean", []string{"ONEAPP_VNF_DNS_ENABLED=perhaps"}, "ONEAPP_VNF_DNS_ENABLED"},
		{"nameserver port", []string{"ONEAPP_VNF_DNS_NAMESERVERS=8.8.8.8@99999"}, "ONEAPP_VNF_DNS_NAMESERVERS"},
		{"prefix too long", []string{"ONEAPP_VNF_DNS_ALLOWED_NETWORKS=10.0.0.0/33"}, "ONEAPP_VNF_DNS_ALLOWED_NETWORKS"},
		{"negative timeout", []string{"ONEAPP_VNF_DNS_UPSTREAM_TIMEOUT=-5"}, "ONEAPP_VNF_DNS_UPSTREAM_TIMEOUT"},
		{"unknown NIC", []string{"ONEAPP_VNF_DNS_INTERFACES=eth4"}, "ONEAPP_VNF_DNS_INTERFACES"},
		{"domain with a blank", []string{"ONEAPP_VNF_DNS_CLUSTER_DOMAIN=vr local"}, "ONEAPP_VNF_DNS_CLUSTER_DOMAIN"},
		{"unbound directive in a value", []string{"ONEAPP_VNF_DNS_CLUSTER_DOMAIN=vr\"\n    interface: 0.0.0.0"}, "ONEAPP_VNF_DNS_CLUSTER_DOMAIN"},
		{"cache TTL not a number", []string{"ONEAPP_VNF_DNS_MAX_CACHE_TTL=forever"}, "ONEAPP_VNF_DNS_MAX_CACHE_TTL"},
	},
	"one-dhcp4v2": {
		{"not a boolean", []string{"ONEAPP_VNF_DHCP4_ENABLED=si"}, "ONEAPP_VNF_DHCP4_ENABLED"},
		{"lease too short", []string{"ONEAPP_VNF_DHCP4_LEASE_TIME=10"}, "ONEAPP_VNF_DHCP4_LEASE_TIME"},
		{"pool outside the subnet", []string{"ONEAPP_VNF_DHCP4_ETH1=10.0.0.0/24:10.0.0.50-10.0.1.10"}, "ONEAPP_VNF_DHCP4_ETH1"},
		{"MAC prefix", []string{"ONEAPP_VNF_DHCP4_MAC2IP_MACPREFIX=zz:zz"}, "ONEAPP_VNF_DHCP4_MAC2IP_MACPREFIX"},
		{"gateway not an address", []string{"ONEAPP_VNF_DHCP4_GATEWAY=not-an-ip"}, "ONEAPP_VNF_DHCP4_GATEWAY"},
		{"MTU too small", []string{"ONEAPP_VNF_DHCP4_ETH1_MTU=20"}, "ONEAPP_VNF_DHCP4_ETH1_MTU"},
		{"unknown NIC", []string{"ONEAPP_VNF_DHCP4_INTERFACES=eth3"}, "ONEAPP_VNF_DHCP4_INTERFACES"},
	},
	"one-failover": {
		{"VRID out of range", []string{"ONEAPP_VNF_KEEPALIVED_VRID=300"}, "ONEAPP_VNF_KEEPALIVED_VRID"},
		{"priority 0", []string{"ONEAPP_VNF_KEEPALIVED_PRIORITY=0"}, "ONEAPP_VNF_KEEPALIVED_PRIORITY"},
		{"password too long", []string{"ONEAPP_VNF_KEEPALIVED_PASSWORD=toolongpassword"}, "ONEAPP_VNF_KEEPALIVED_PASSWORD"},
		{"interval not a number", []string{"ONEAPP_VNF_KEEPALIVED_INTERVAL=abc"}, "ONEAPP_VNF_KEEPALIVED_INTERVAL"},
		{"unicast peer", []string{"ONEAPP_VNF_KEEPALIVED_ETH1_UNICAST_PEERS=10.0.0.999"}, "ONEAPP_VNF_KEEPALIVED_ETH1_UNICAST_PEERS"},
		{"unknown NIC", []string{"ONEAPP_VNF_KEEPALIVED_INTERFACES=eth6"}, "ONEAPP_VNF_KEEPALIVED_INTERFACES"},
		{"preempt delay", []string{"ONEAPP_VNF_KEEPALIVED_PREEMPT_DELAY=5000"}, "ONEAPP_VNF_KEEPALIVED_PREEMPT_DELAY"},
		{"conntrackd on an unknown NIC", []string{"ONEAPP_VNF_CONNTRACKD_ENABLED=YES", "ONEAPP_VNF_CONNTRACKD_INTERFACE=eth8"}, "ONEAPP_VNF_CONNTRACKD_INTERFACE"},
		{"a service switch not a boolean", []string{"ONEAPP_VNF_NAT4_ENABLED=maybe"}, "ONEAPP_VNF_NAT4_ENABLED"},
	},
	"one-wg": {
		{"not a boolean", []string{"ONEAPP_VNF_WG_ENABLED=oui"}, "ONEAPP_VNF_WG_ENABLED"},
		{"port 0", []string{"ONEAPP_VNF_WG_LISTEN_PORT=0"}, "ONEAPP_VNF_WG_LISTEN_PORT"},
		{"too many peers", []string{"ONEAPP_VNF_WG_PEERS=100000"}, "ONEAPP_VNF_WG_PEERS"},
		{"subnet", []string{"ONEAPP_VNF_WG_SUBNET=169.254.33.0/33"}, "ONEAPP_VNF_WG_SUBNET"},
		{"unknown NIC", []string{"ONEAPP_VNF_WG_INTERFACE_OUT=eth9"}, "ONEAPP_VNF_WG_INTERFACE_OUT"},
		{"device name with a shell", []string{"ONEAPP_VNF_WG_DEVICE=wg0;reboot"}, "ONEAPP_VNF_WG_DEVICE"},
	},
	// TODO(one-sdnat4, one-lvs, one-haproxy): their cases.
	"one-sdnat4":  nil,
	"one-lvs":     nil,
	"one-haproxy": nil,
}

// secrets must never appear in a message, even in the one refusing them.
var secrets = []string{"toolongpassword"}
