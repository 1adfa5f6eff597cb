// Command one-sdnat4 is a service of the Virtual Router that is not implemented yet;
// every verb says so and exits 1.
package main

import "github.com/hypercx/vrouter/pkg/cli"

func main() {
	cli.Main(cli.NotImplemented{Desc: cli.Info{Name: "one-sdnat4", Summary: "SDNAT4: public IPs mapped 1:1 to private VMs (not implemented yet)", Kind: cli.Daemon}})
}
