// Command one-failover is a service of the Virtual Router that is not implemented yet;
// every verb says so and exits 1.
package main

import "github.com/hypercx/vrouter/pkg/cli"

func main() {
	cli.Main(cli.NotImplemented{Desc: cli.Info{Name: "one-failover", Summary: "Failover: starts and stops services on VRRP transitions (not implemented yet)", Kind: cli.Daemon}})
}
