package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hypercx/vrouter/tests/lab"
)

// dhcpVMMAC is the demo's DHCP VM: a NIC as the cloud makes it, 02:00
// followed by its address, 10.0.0.13.
const (
	dhcpVMMAC  = "02:00:0a:00:00:0d"
	dhcpVMAddr = "10.0.0.13"
)

// udhcpcScript is what a VM's DHCP client does with a lease: address, MTU,
// default route, nameservers (written next to the script: a lab VM has no
// /etc of its own) and a record of the lease for the demo to show.
const udhcpcScript = `#!/bin/sh
[ "$1" = bound ] || exit 0
ip addr flush dev "$interface"
ip addr add "$ip/$mask" dev "$interface"
[ -z "$mtu" ] || ip link set dev "$interface" mtu "$mtu"
for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
: > "$0.resolv"
for d in $dns; do echo "nameserver $d" >> "$0.resolv"; done
echo "ip=$ip/$mask router=$router dns=$dns lease=$lease serverid=$serverid" > "$0.out"
`

// stepDHCP shows DHCP as one-failover runs it on the master (after the
// failover step: the new master): a second VM on the private network, with
// no address at all, configures itself with busybox udhcpc from the
// router's answer (its address from its MAC, the private VIP as gateway and
// as nameserver, since one-dns serves eth1), resolves ep0.eth0.vr and a
// public name through the router and reaches the internet through it; a
// MAC the cloud did not make gets no lease; the backup serves no DHCP.
func stepDHCP(w *world, r *report) error {
	fmt.Println("== DHCP4 (one-dhcp4v2) on the master: a VM configured by DHCP resolves through the router")
	m, err := w.master()
	if err != nil {
		return r.add("dhcp", "a master to ask", 0, err)
	}
	b := w.ha.Other(m)
	script := filepath.Join(w.lab.Dir, "dhcpvm-udhcpc.sh")
	var vm *lab.Namespace
	lease := func(h lab.Host, tries string) (string, error) {
		_ = os.Remove(script + ".out")
		out, err := lab.Run(context.Background(), h, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", tries, "-T", "1", "-s", script)
		if err != nil {
			return "", fmt.Errorf("no lease: %v %s", err, out)
		}
		got, err := os.ReadFile(script + ".out")
		return strings.TrimSpace(string(got)), err
	}
	nameserver := ""
	return r.all([]checkFunc{
		{"dhcp", "a second VM joins the private network: MAC " + dhcpVMMAC + ", no address", func() error {
			if err := os.WriteFile(script, []byte(udhcpcScript), 0o755); err != nil {
				return err
			}
			var err error
			if vm, err = w.lab.Host("vm2"); err != nil {
				return err
			}
			if err := w.ha.Private.Attach(vm, "eth0"); err != nil {
				return err
			}
			_, err = lab.Run(context.Background(), vm, "ip", "link", "set", "eth0", "address", dhcpVMMAC)
			return err
		}},
		{"dhcp", m.Role + " runs one-dhcp4v2 (started by one-failover), " + b.Role + " (backup) does not", func() error {
			if err := serving(m, []string{"one-dhcp4v2"}, true); err != nil {
				return err
			}
			return serving(b, []string{"one-dhcp4v2"}, false)
		}},
		{"dhcp", "VM: udhcpc gets " + dhcpVMAddr + "/24, router, DNS and server 10.0.0.1 (the VIP)", func() error {
			if vm == nil {
				return fmt.Errorf("no VM")
			}
			got, err := lease(vm, "5")
			if err != nil {
				return err
			}
			fmt.Printf("           lease: %s\n", got)
			want := "ip=" + dhcpVMAddr + "/24 router=10.0.0.1 dns=10.0.0.1 lease=3600 serverid=10.0.0.1"
			if got != want {
				return fmt.Errorf("lease %q, want %q", got, want)
			}
			return nil
		}},
		{"dhcp", "VM runs on the lease: its address, default route via 10.0.0.1, nameserver", func() error {
			if vm == nil {
				return fmt.Errorf("no VM")
			}
			addr, _ := lab.Run(context.Background(), vm, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
			route, _ := lab.Run(context.Background(), vm, "ip", "route", "show", "default")
			resolv, err := os.ReadFile(script + ".resolv")
			if !strings.Contains(addr, " inet "+dhcpVMAddr+"/24 ") || !strings.Contains(route, "default via 10.0.0.1 dev eth0") || err != nil {
				return fmt.Errorf("address %q, route %q, nameservers %q (%v)", addr, route, resolv, err)
			}
			nameserver = strings.TrimPrefix(strings.TrimSpace(string(resolv)), "nameserver ")
			fmt.Printf("           %s; %s", strings.Join(strings.Fields(addr)[1:4], " "), route)
			return nil
		}},
		{"dhcp", "VM: dig @<its DHCP nameserver> ep0.eth0.vr = 203.0.113.1 (through the router)", func() error {
			if nameserver != "10.0.0.1" {
				return fmt.Errorf("the VM's nameserver is %q", nameserver)
			}
			return dnsAnswer(vm, nameserver, "ep0.eth0.vr", "203.0.113.1")
		}},
		{"dhcp", "VM: dig @<its DHCP nameserver> www.example.com = 198.51.100.80 (forwarder)", func() error {
			if nameserver == "" {
				return fmt.Errorf("the VM has no nameserver")
			}
			return dnsAnswer(vm, nameserver, "www.example.com", "198.51.100.80")
		}},
		{"dhcp", "VM -> internet TCP over its DHCP route: the internet host sees the public VIP", func() error {
			if vm == nil {
				return fmt.Errorf("no VM")
			}
			return answer(vm, "tcp", lab.InetAddr+":7000", "peer="+lab.PublicVIP+":")
		}},
		{"dhcp", "a NIC the cloud did not make (MAC 52:54:00:12:34:56) gets no lease", func() error {
			other, err := w.lab.Host("vm3")
			if err != nil {
				return err
			}
			if err := w.ha.Private.Attach(other, "eth0"); err != nil {
				return err
			}
			if _, err := lab.Run(context.Background(), other, "ip", "link", "set", "eth0", "address", "52:54:00:12:34:56"); err != nil {
				return err
			}
			if got, err := lease(other, "2"); err == nil {
				return fmt.Errorf("it got a lease: %s", got)
			}
			return nil
		}},
		{"dhcp", m.Role + ": one-dhcp4v2 status: serving eth1, the VM's lease active", func() error {
			out, err := lab.Run(context.Background(), m, "one-dhcp4v2", "status")
			if err != nil {
				return fmt.Errorf("%v\n%s", err, out)
			}
			if !strings.Contains(out, "active leases 1") {
				return fmt.Errorf("status:\n%s", out)
			}
			return nil
		}},
	})
}
