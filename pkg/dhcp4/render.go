package dhcp4

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Render writes onelease-config.yml: coredhcp's configuration format, one
// block per NIC (as the original wrapper read it), each an ordinary coredhcp
// `server4` section listening on that NIC only. Every value comes from the
// parsed Spec (addresses, numbers, NIC names, fixed paths), so nothing from
// the context reaches the file unvalidated.
func Render(spec Spec) []byte {
	var b strings.Builder
	b.WriteString("# one-dhcp4v2: one DHCP server per NIC, in coredhcp's configuration format.\n")
	b.WriteString("# Written by `one-dhcp4v2 configure` from the context; edits are overwritten.\n")
	b.WriteString("# Plugins run in order; onelease (leases) comes last.\n")
	for _, sk := range spec.Skipped {
		fmt.Fprintf(&b, "# %s: not served: %s\n", sk.NIC, sk.Reason)
	}
	for _, s := range spec.Servers {
		fmt.Fprintf(&b, "%s:\n  server4:\n    listen:\n      - \"%%%s\"\n    plugins:\n", s.NIC, s.NIC)
		plugin := func(name string, args ...string) {
			fmt.Fprintf(&b, "      - %s: %s\n", name, strings.Join(args, " "))
		}
		plugin("server_id", s.ServerID.String())
		plugin("netmask", s.Netmask().String())
		plugin("router", strs(s.Routers)...)
		if len(s.DNS) > 0 {
			plugin("dns", strs(s.DNS)...)
		}
		if s.MTU > 0 {
			plugin("mtu", fmt.Sprint(s.MTU))
		} else {
			plugin("mtu", fmt.Sprintf("\"%%%s\"", s.NIC))
		}
		plugin("onelease", oneleaseArgs(s)...)
	}
	return []byte(b.String())
}

// oneleaseArgs is the argument list of the onelease plugin.
func oneleaseArgs(s Server) []string {
	args := []string{s.LeaseFile, s.Start.String(), s.End.String(), seconds(s.LeaseTime)}
	if len(s.Excluded) > 0 {
		args = append(args, "--excluded-ips", strings.Join(strs(s.Excluded), ","))
	}
	if s.MAC2IP {
		args = append(args, "--mac2ip", "--mac2ip-prefix", s.MACPrefix)
	}
	if s.Authoritative {
		args = append(args, "--authoritative")
	}
	return args
}

func seconds(d time.Duration) string { return fmt.Sprintf("%ds", int64(d/time.Second)) }

func strs(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}
