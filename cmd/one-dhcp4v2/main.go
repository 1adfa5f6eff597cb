// Command one-dhcp4v2 is a service of the Virtual Router that is not implemented yet;
// every verb says so and exits 1.
package main

import "github.com/hypercx/vrouter/pkg/cli"

func main() {
	cli.Main(cli.NotImplemented{Desc: cli.Info{Name: "one-dhcp4v2", Summary: "DHCP4: DHCP server for isolated networks (not implemented yet)", Kind: cli.Daemon}})
}
