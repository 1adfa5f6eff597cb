package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// udhcpcScript is busybox udhcpc's event script: on a lease it records what
// the server gave (next to the script, as KEY=value lines) and, when the
// first argument after the event is "configure", does what a VM's DHCP
// client does with it: address, MTU, default route. Nameservers are only
// recorded: a lab host has no /etc of its own.
const udhcpcScript = `#!/bin/sh
[ "$1" = bound ] || exit 0
if [ -e "$0.configure" ]; then
	ip addr flush dev "$interface"
	ip addr add "$ip/$mask" dev "$interface"
	[ -z "$mtu" ] || ip link set dev "$interface" mtu "$mtu"
	for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
fi
{
	echo "ip=$ip"
	echo "mask=$mask"
	echo "subnet=$subnet"
	echo "router=$router"
	echo "dns=$dns"
	echo "mtu=$mtu"
	echo "lease=$lease"
	echo "serverid=$serverid"
} > "$0.out"
`

// DHCPClient is a lab host's DHCP client on one interface: busybox udhcpc,
// run once per Lease.
type DHCPClient struct {
	Host   Host
	Iface  string
	script string
}

// DHCPClient prepares a DHCP client for ifname of h. With configure, each
// lease is applied to the interface (address, MTU, default route) as on a
// VM; without, it is only reported.
func (l *Lab) DHCPClient(h Host, ifname string, configure bool) (*DHCPClient, error) {
	script := filepath.Join(l.Dir, "udhcpc-"+h.Netns()+"-"+ifname+".sh")
	if err := os.WriteFile(script, []byte(udhcpcScript), 0o755); err != nil {
		return nil, err
	}
	_ = os.Remove(script + ".configure")
	if configure {
		if err := os.WriteFile(script+".configure", nil, 0o644); err != nil {
			return nil, err
		}
	}
	return &DHCPClient{Host: h, Iface: ifname, script: script}, nil
}

// Lease runs udhcpc once (5 DISCOVERs a second apart unless extra says
// otherwise, e.g. "-t", "2") and returns what the server gave: ip, mask,
// subnet, router, dns, mtu, lease, serverid. An error when no lease came.
func (c *DHCPClient) Lease(extra ...string) (map[string]string, error) {
	_ = os.Remove(c.script + ".out")
	args := append([]string{"busybox", "udhcpc", "-i", c.Iface, "-f", "-q", "-n", "-t", "5", "-T", "1", "-O", "mtu", "-s", c.script}, extra...)
	if out, err := Run(context.Background(), c.Host, args...); err != nil {
		return nil, fmt.Errorf("udhcpc: %v\n%s", err, out)
	}
	b, err := os.ReadFile(c.script + ".out")
	if err != nil {
		return nil, fmt.Errorf("udhcpc got no lease: %v", err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	return got, nil
}
