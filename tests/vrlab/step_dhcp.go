package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/hypercx/vrouter/tests/lab"
)

// dhcpVMMAC is the demo's DHCP VM: a NIC as the cloud makes it, 02:00
// followed by its address, 10.0.0.13.
const (
	dhcpVMMAC  = "02:00:0a:00:00:0d"
	dhcpVMAddr = "10.0.0.13"
)

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
	var vm *lab.Namespace
	var client *lab.DHCPClient
	nameserver := ""
	return r.all([]checkFunc{
		{"dhcp", "a second VM joins the private network: MAC " + dhcpVMMAC + ", no address", func() error {
			var err error
			if vm, err = w.lab.Host("vm2"); err != nil {
				return err
			}
			if err := w.ha.Private.Attach(vm, "eth0"); err != nil {
				return err
			}
			if _, err = lab.Run(context.Background(), vm, "ip", "link", "set", "eth0", "address", dhcpVMMAC); err != nil {
				return err
			}
			// Its DHCP client configures the interface from the lease.
			client, err = w.lab.DHCPClient(vm, "eth0", true)
			return err
		}},
		{"dhcp", m.Role + " runs one-dhcp4v2 (started by one-failover), " + b.Role + " (backup) does not", func() error {
			if err := serving(m, []string{"one-dhcp4v2"}, true); err != nil {
				return err
			}
			return serving(b, []string{"one-dhcp4v2"}, false)
		}},
		{"dhcp", "VM: udhcpc gets " + dhcpVMAddr + "/24, router, DNS and server 10.0.0.1 (the VIP)", func() error {
			if client == nil {
				return fmt.Errorf("no VM")
			}
			got, err := client.Lease()
			if err != nil {
				return err
			}
			fmt.Printf("           lease: %s/%s router %s dns %s lease %ss server %s\n", got["ip"], got["mask"], got["router"], got["dns"], got["lease"], got["serverid"])
			want := map[string]string{"ip": dhcpVMAddr, "mask": "24", "router": "10.0.0.1", "dns": "10.0.0.1", "lease": "3600", "serverid": "10.0.0.1"}
			for k, v := range want {
				if got[k] != v {
					return fmt.Errorf("lease %s=%q, want %q", k, got[k], v)
				}
			}
			nameserver = got["dns"]
			return nil
		}},
		{"dhcp", "VM runs on the lease: its address and default route via 10.0.0.1", func() error {
			if vm == nil {
				return fmt.Errorf("no VM")
			}
			addr, _ := lab.Run(context.Background(), vm, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
			route, _ := lab.Run(context.Background(), vm, "ip", "route", "show", "default")
			if !strings.Contains(addr, " inet "+dhcpVMAddr+"/24 ") || !strings.Contains(route, "default via 10.0.0.1 dev eth0") {
				return fmt.Errorf("address %q, route %q", addr, route)
			}
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
			c, err := w.lab.DHCPClient(other, "eth0", false)
			if err != nil {
				return err
			}
			if got, err := c.Lease("-t", "2"); err == nil {
				return fmt.Errorf("it got a lease: %v", got)
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
