// Command one-dns is a service of the Virtual Router that is not implemented yet;
// every verb says so and exits 1.
package main

import "github.com/hypercx/vrouter/pkg/cli"

func main() {
	cli.Main(cli.NotImplemented{Desc: cli.Info{Name: "one-dns", Summary: "DNS: unbound recursor (not implemented yet)", Kind: cli.Daemon}})
}
