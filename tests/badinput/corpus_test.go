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
	// SDNAT4 maps what the OneGate simulator (on the lab's internet host,
	// started by TestBadInput with the demo's documents) reports: web
	// (VM 20, 10.0.0.14) has the public address 203.0.113.20.
	"one-sdnat4": `export ONEAPP_VNF_SDNAT4_ENABLED="YES"
export ONEAPP_VNF_SDNAT4_INTERFACES="eth0 eth1"
export ONEGATE_ENDPOINT="` + gateURL + `"
export TOKENTXT="` + gateToken + `"
export VMID="10"
`,
	// LVS: a TCP LB with two real servers on the public VIP, and an
	// all-ports UDP LB on the private VIP (firewall marks in the mangle
	// table). The kernel has no IPVS: keepalived runs VRRP only, but
	// lvs.conf and the marks are written.
	"one-lvs": `export ONEAPP_VNF_LB_ENABLED="YES"
export ONEAPP_VNF_LB0_IP="<ETH0_VIP0>"
export ONEAPP_VNF_LB0_PORT="443"
export ONEAPP_VNF_LB0_PROTOCOL="TCP"
export ONEAPP_VNF_LB0_SCHEDULER="rr"
export ONEAPP_VNF_LB0_SERVER0_HOST="10.0.0.12"
export ONEAPP_VNF_LB0_SERVER0_PORT="443"
export ONEAPP_VNF_LB0_SERVER1_HOST="10.0.0.13"
export ONEAPP_VNF_LB0_SERVER1_PORT="443"
export ONEAPP_VNF_LB0_SERVER1_WEIGHT="2"
export ONEAPP_VNF_LB1_IP="<ETH1_VIP0>"
export ONEAPP_VNF_LB1_SERVER0_HOST="10.0.0.12"
`,
	// HAProxy: two LBs on the public VIP, dynamic backends on (none are
	// published: the OneGate variables are read and checked).
	"one-haproxy": `export ONEAPP_VNF_HAPROXY_ENABLED="YES"
export ONEAPP_VNF_HAPROXY_ONEGATE_ENABLED="YES"
export ONEAPP_VNF_HAPROXY_LB0_IP="<ETH0_VIP0>"
export ONEAPP_VNF_HAPROXY_LB0_PORT="80"
export ONEAPP_VNF_HAPROXY_LB0_BALANCE="leastconn"
export ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST="10.0.0.12"
export ONEAPP_VNF_HAPROXY_LB0_SERVER0_PORT="80"
export ONEAPP_VNF_HAPROXY_LB0_SERVER1_HOST="10.0.0.13"
export ONEAPP_VNF_HAPROXY_LB0_SERVER1_PORT="80"
export ONEAPP_VNF_HAPROXY_LB0_SERVER1_ULIMIT="100"
export ONEAPP_VNF_HAPROXY_LB1_IP="<ETH0_VIP0>"
export ONEAPP_VNF_HAPROXY_LB1_PORT="8443"
export ONEAPP_VNF_HAPROXY_LB1_CHECK_INTERVAL="0.5"
export ONEAPP_VNF_HAPROXY_LB1_SERVER0_HOST="10.0.0.12"
export ONEAPP_VNF_HAPROXY_LB1_SERVER0_PORT="443"
`,
}

// The OneGate simulator the router's context points at, and its token (a
// secret: no message may show it).
const (
	gateURL   = "http://203.0.113.100:5030"
	gateToken = "badinput-onegate-token"
)

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
		{"port too high", []string{"ONEAPP_VNF_WG_LISTEN_PORT=65536"}, "ONEAPP_VNF_WG_LISTEN_PORT"},
		{"peers 0", []string{"ONEAPP_VNF_WG_PEERS=0"}, "ONEAPP_VNF_WG_PEERS"},
		{"peers not a number", []string{"ONEAPP_VNF_WG_PEERS=five"}, "ONEAPP_VNF_WG_PEERS"},
		{"no outgoing NIC", []string{"ONEAPP_VNF_WG_INTERFACE_OUT="}, "ONEAPP_VNF_WG_INTERFACE_OUT"},
		{"no private NIC", []string{"ONEAPP_VNF_WG_INTERFACE_IN="}, "ONEAPP_VNF_WG_INTERFACE_IN"},
		{"private NIC is a management NIC", []string{"ETH1_VROUTER_MANAGEMENT=YES"}, "ONEAPP_VNF_WG_INTERFACE_IN"},
		{"outgoing NIC is a management NIC", []string{"ETH0_VROUTER_MANAGEMENT=YES"}, "ONEAPP_VNF_WG_INTERFACE_OUT"},
		{"subnet too small for the peers", []string{"ONEAPP_VNF_WG_SUBNET=169.254.33.0/30"}, "ONEAPP_VNF_WG_SUBNET"},
		{"subnet overlaps a NIC's network", []string{"ONEAPP_VNF_WG_SUBNET=10.0.0.0/25"}, "ONEAPP_VNF_WG_SUBNET"},
		{"subnet with a newline", []string{"ONEAPP_VNF_WG_SUBNET=169.254.33.0/24\nPostUp = touch /tmp/badinput-pwned"}, "ONEAPP_VNF_WG_SUBNET"},
	},
	"one-sdnat4": {
		{"not a boolean", []string{"ONEAPP_VNF_SDNAT4_ENABLED=maybe"}, "ONEAPP_VNF_SDNAT4_ENABLED"},
		{"refresh rate 0", []string{"ONEAPP_VNF_SDNAT4_REFRESH_RATE=0"}, "ONEAPP_VNF_SDNAT4_REFRESH_RATE"},
		{"refresh rate garbage", []string{"ONEAPP_VNF_SDNAT4_REFRESH_RATE=30s"}, "ONEAPP_VNF_SDNAT4_REFRESH_RATE"},
		{"refresh rate negative", []string{"ONEAPP_VNF_SDNAT4_REFRESH_RATE=-1"}, "ONEAPP_VNF_SDNAT4_REFRESH_RATE"},
		{"refresh rate over a day", []string{"ONEAPP_VNF_SDNAT4_REFRESH_RATE=86401"}, "ONEAPP_VNF_SDNAT4_REFRESH_RATE"},
		{"unknown NIC", []string{"ONEAPP_VNF_SDNAT4_INTERFACES=eth0 eth5"}, "ONEAPP_VNF_SDNAT4_INTERFACES"},
		{"address no NIC holds", []string{"ONEAPP_VNF_SDNAT4_INTERFACES=192.0.2.1"}, "ONEAPP_VNF_SDNAT4_INTERFACES"},
		{"shell in the interface list", []string{"ONEAPP_VNF_SDNAT4_INTERFACES=eth1 `touch /tmp/badinput-pwned`"}, "ONEAPP_VNF_SDNAT4_INTERFACES"},
		{"no OneGate endpoint", []string{"ONEGATE_ENDPOINT="}, "ONEGATE_ENDPOINT"},
		{"OneGate endpoint not http", []string{"ONEGATE_ENDPOINT=ftp://203.0.113.100:5030"}, "ONEGATE_ENDPOINT"},
		{"OneGate endpoint with a password and a query", []string{"ONEGATE_ENDPOINT=http://oneadmin:hunter2secret@203.0.113.100:5030/?x=1"}, "ONEGATE_ENDPOINT"},
		{"token with a line break", []string{"TOKENTXT=" + gateToken + "\nX-Injected: 1"}, "TOKENTXT"},
		{"VM ID not a number", []string{"VMID=ten"}, "VMID"},
		{"TLS switch not a boolean", []string{"ONEAPP_VNF_ONEGATE_SKIP_TLS_VERIFY=sometimes"}, "ONEAPP_VNF_ONEGATE_SKIP_TLS_VERIFY"},
		{"conntrackd switch not a boolean", []string{"ONEAPP_VNF_CONNTRACKD_ENABLED=yes please"}, "ONEAPP_VNF_CONNTRACKD_ENABLED"},
	},
	"one-lvs": {
		{"not a boolean", []string{"ONEAPP_VNF_LB_ENABLED=ja"}, "ONEAPP_VNF_LB_ENABLED"},
		{"OneGate switch not a boolean", []string{"ONEAPP_VNF_LB_ONEGATE_ENABLED=2"}, "ONEAPP_VNF_LB_ONEGATE_ENABLED"},
		{"refresh rate 0", []string{"ONEAPP_VNF_LB_REFRESH_RATE=0"}, "ONEAPP_VNF_LB_REFRESH_RATE"},
		{"discovery API", []string{"ONEAPP_VNF_LB_ONEGATE_API=everything"}, "ONEAPP_VNF_LB_ONEGATE_API"},
		{"unknown NIC", []string{"ONEAPP_VNF_LB_INTERFACES=eth3"}, "ONEAPP_VNF_LB_INTERFACES"},
		{"LB address invalid", []string{"ONEAPP_VNF_LB0_IP=203.0.113.256"}, "ONEAPP_VNF_LB0_IP"},
		{"LB address not the router's", []string{"ONEAPP_VNF_LB0_IP=198.51.100.7"}, "ONEAPP_VNF_LB0_IP"},
		{"LB placeholder to nothing", []string{"ONEAPP_VNF_LB0_IP=<ETH4_VIP0>"}, "ONEAPP_VNF_LB0_IP"},
		{"LB port out of range", []string{"ONEAPP_VNF_LB0_PORT=65536"}, "ONEAPP_VNF_LB0_PORT"},
		{"LB port not a number", []string{"ONEAPP_VNF_LB0_PORT=https"}, "ONEAPP_VNF_LB0_PORT"},
		{"options without an address", []string{"ONEAPP_VNF_LB7_PROTOCOL=TCP", "ONEAPP_VNF_LB7_PORT=22"}, "ONEAPP_VNF_LB7_PORT"},
		{"servers of an LB without an address", []string{"ONEAPP_VNF_LB8_SERVER0_HOST=10.0.0.12"}, "ONEAPP_VNF_LB8_SERVER0_HOST"},
		{"server without a host", []string{"ONEAPP_VNF_LB0_SERVER5_PORT=443"}, "ONEAPP_VNF_LB0_SERVER5_PORT"},
		{"server host not an address or a name", []string{"ONEAPP_VNF_LB0_SERVER0_HOST=10.0.0.300"}, "ONEAPP_VNF_LB0_SERVER0_HOST"},
		{"server host with a blank", []string{"ONEAPP_VNF_LB0_SERVER0_HOST=10.0.0.12 10.0.0.13"}, "ONEAPP_VNF_LB0_SERVER0_HOST"},
		{"server host with keepalived syntax", []string{"ONEAPP_VNF_LB0_SERVER0_HOST=10.0.0.12 443 {\n}\nvirtual_server 10.0.0.1 22 {"}, "ONEAPP_VNF_LB0_SERVER0_HOST"},
		{"server port", []string{"ONEAPP_VNF_LB0_SERVER1_PORT=0x1bb"}, "ONEAPP_VNF_LB0_SERVER1_PORT"},
		{"weight too high", []string{"ONEAPP_VNF_LB0_SERVER1_WEIGHT=70000"}, "ONEAPP_VNF_LB0_SERVER1_WEIGHT"},
		{"upper limit not a number", []string{"ONEAPP_VNF_LB0_SERVER0_ULIMIT=1e3"}, "ONEAPP_VNF_LB0_SERVER0_ULIMIT"},
		{"lower limit above the upper one", []string{"ONEAPP_VNF_LB0_SERVER0_ULIMIT=10", "ONEAPP_VNF_LB0_SERVER0_LLIMIT=20"}, "ONEAPP_VNF_LB0_SERVER0_LLIMIT"},
		{"protocol", []string{"ONEAPP_VNF_LB0_PROTOCOL=SCTP"}, "ONEAPP_VNF_LB0_PROTOCOL"},
		{"method", []string{"ONEAPP_VNF_LB0_METHOD=TUN"}, "ONEAPP_VNF_LB0_METHOD"},
		{"scheduler", []string{"ONEAPP_VNF_LB0_SCHEDULER=random"}, "ONEAPP_VNF_LB0_SCHEDULER"},
		{"scheduler with a newline", []string{"ONEAPP_VNF_LB0_SCHEDULER=rr\n    persistence_timeout 1"}, "ONEAPP_VNF_LB0_SCHEDULER"},
		{"DR to another port", []string{"ONEAPP_VNF_LB0_METHOD=DR", "ONEAPP_VNF_LB0_SERVER1_PORT=8443"}, "ONEAPP_VNF_LB0_SERVER1_PORT"},
		{"two LBs on one port", []string{"ONEAPP_VNF_LB2_IP=<ETH0_VIP0>", "ONEAPP_VNF_LB2_PORT=443", "ONEAPP_VNF_LB2_PROTOCOL=tcp"}, "ONEAPP_VNF_LB2_IP"},
		{"firewall mark offset 0", []string{"ONEAPP_VNF_LB_FWMARK_OFFSET=0"}, "ONEAPP_VNF_LB_FWMARK_OFFSET"},
		{"firewall mark offset too high", []string{"ONEAPP_VNF_LB_FWMARK_OFFSET=4294967295"}, "ONEAPP_VNF_LB_FWMARK_OFFSET"},
		{"all-ports LB on a management NIC's address", []string{"ETH1_VROUTER_MANAGEMENT=YES"}, "ONEAPP_VNF_LB1_IP"},
		{"LB on a management NIC's own address", []string{"ETH1_VROUTER_MANAGEMENT=YES", "ONEAPP_VNF_LB1_IP=<ETH1_IP0>", "ONEAPP_VNF_LB1_PORT=53"}, "ONEAPP_VNF_LB1_IP"},
	},
	"one-haproxy": {
		{"not a boolean", []string{"ONEAPP_VNF_HAPROXY_ENABLED=enabled"}, "ONEAPP_VNF_HAPROXY_ENABLED"},
		{"OneGate switch not a boolean", []string{"ONEAPP_VNF_HAPROXY_ONEGATE_ENABLED=Y"}, "ONEAPP_VNF_HAPROXY_ONEGATE_ENABLED"},
		{"refresh rate garbage", []string{"ONEAPP_VNF_HAPROXY_REFRESH_RATE=soon"}, "ONEAPP_VNF_HAPROXY_REFRESH_RATE"},
		{"refresh rate 0", []string{"ONEAPP_VNF_HAPROXY_REFRESH_RATE=0"}, "ONEAPP_VNF_HAPROXY_REFRESH_RATE"},
		{"unknown NIC", []string{"ONEAPP_VNF_HAPROXY_INTERFACES=eth0,eth2"}, "ONEAPP_VNF_HAPROXY_INTERFACES"},
		{"LB address invalid", []string{"ONEAPP_VNF_HAPROXY_LB0_IP=10.0.0"}, "ONEAPP_VNF_HAPROXY_LB0_IP"},
		{"LB address not the router's", []string{"ONEAPP_VNF_HAPROXY_LB1_IP=203.0.113.100"}, "ONEAPP_VNF_HAPROXY_LB1_IP"},
		{"LB address of a NIC left out", []string{"ONEAPP_VNF_HAPROXY_INTERFACES=eth1", "ONEAPP_VNF_HAPROXY_LB1_IP=<ETH0_IP0>"}, "ONEAPP_VNF_HAPROXY_LB1_IP"},
		{"LB without a port", []string{"ONEAPP_VNF_HAPROXY_LB0_PORT="}, "ONEAPP_VNF_HAPROXY_LB0_IP"},
		{"LB port 0", []string{"ONEAPP_VNF_HAPROXY_LB0_PORT=0"}, "ONEAPP_VNF_HAPROXY_LB0_PORT"},
		{"LB port with a blank", []string{"ONEAPP_VNF_HAPROXY_LB0_PORT=80 81"}, "ONEAPP_VNF_HAPROXY_LB0_PORT"},
		{"options without an address", []string{"ONEAPP_VNF_HAPROXY_LB3_BALANCE=source"}, "ONEAPP_VNF_HAPROXY_LB3_BALANCE"},
		{"servers of an LB without an address", []string{"ONEAPP_VNF_HAPROXY_LB4_PORT=80", "ONEAPP_VNF_HAPROXY_LB4_SERVER0_HOST=10.0.0.12", "ONEAPP_VNF_HAPROXY_LB4_SERVER0_PORT=80"}, "ONEAPP_VNF_HAPROXY_LB4_PORT"},
		{"server without a host", []string{"ONEAPP_VNF_HAPROXY_LB0_SERVER1_HOST="}, "ONEAPP_VNF_HAPROXY_LB0_SERVER1_PORT"},
		{"server without a port", []string{"ONEAPP_VNF_HAPROXY_LB0_SERVER0_PORT="}, "ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST"},
		{"server host with haproxy syntax", []string{"ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST=10.0.0.12:80 check\n  server evil 192.0.2.66"}, "ONEAPP_VNF_HAPROXY_LB0_SERVER0_HOST"},
		{"server host with a blank", []string{"ONEAPP_VNF_HAPROXY_LB1_SERVER0_HOST=web 1"}, "ONEAPP_VNF_HAPROXY_LB1_SERVER0_HOST"},
		{"server host a bad name", []string{"ONEAPP_VNF_HAPROXY_LB1_SERVER0_HOST=-web.example"}, "ONEAPP_VNF_HAPROXY_LB1_SERVER0_HOST"},
		{"server port out of range", []string{"ONEAPP_VNF_HAPROXY_LB0_SERVER1_PORT=100000"}, "ONEAPP_VNF_HAPROXY_LB0_SERVER1_PORT"},
		{"weight over 256", []string{"ONEAPP_VNF_HAPROXY_LB0_SERVER0_WEIGHT=257"}, "ONEAPP_VNF_HAPROXY_LB0_SERVER0_WEIGHT"},
		{"weight negative", []string{"ONEAPP_VNF_HAPROXY_LB0_SERVER0_WEIGHT=-1"}, "ONEAPP_VNF_HAPROXY_LB0_SERVER0_WEIGHT"},
		{"upper limit with syntax", []string{"ONEAPP_VNF_HAPROXY_LB0_SERVER1_ULIMIT=100 backup"}, "ONEAPP_VNF_HAPROXY_LB0_SERVER1_ULIMIT"},
		{"balance unknown", []string{"ONEAPP_VNF_HAPROXY_LB0_BALANCE=random"}, "ONEAPP_VNF_HAPROXY_LB0_BALANCE"},
		{"balance with a newline", []string{"ONEAPP_VNF_HAPROXY_LB0_BALANCE=roundrobin\n  option external-check"}, "ONEAPP_VNF_HAPROXY_LB0_BALANCE"},
		{"check interval 0", []string{"ONEAPP_VNF_HAPROXY_LB1_CHECK_INTERVAL=0"}, "ONEAPP_VNF_HAPROXY_LB1_CHECK_INTERVAL"},
		{"check interval garbage", []string{"ONEAPP_VNF_HAPROXY_LB1_CHECK_INTERVAL=2s"}, "ONEAPP_VNF_HAPROXY_LB1_CHECK_INTERVAL"},
		{"check interval over an hour", []string{"ONEAPP_VNF_HAPROXY_LB1_CHECK_INTERVAL=3601"}, "ONEAPP_VNF_HAPROXY_LB1_CHECK_INTERVAL"},
		{"two LBs on one address and port", []string{"ONEAPP_VNF_HAPROXY_LB1_PORT=80"}, "ONEAPP_VNF_HAPROXY_LB1_IP"},
		{"LB on a management NIC's address", []string{"ETH0_VROUTER_MANAGEMENT=YES", "ONEAPP_VNF_HAPROXY_LB1_IP=<ETH0_IP0>"}, "ONEAPP_VNF_HAPROXY_LB1_IP"},
		{"discovery API", []string{"ONEAPP_VNF_LB_ONEGATE_API=vrouters"}, "ONEAPP_VNF_LB_ONEGATE_API"},
		{"OneGate endpoint not a URL", []string{"ONEGATE_ENDPOINT=203.0.113.100:5030"}, "ONEGATE_ENDPOINT"},
	},
}

// secrets must never appear in a message, even in the one refusing them.
var secrets = []string{"toolongpassword", gateToken, "hunter2secret"}
