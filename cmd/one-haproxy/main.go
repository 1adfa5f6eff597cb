// Command one-haproxy is a service of the Virtual Router that is not implemented yet;
// every verb says so and exits 1.
package main

import "github.com/hypercx/vrouter/pkg/cli"

func main() {
	cli.Main(cli.NotImplemented{Desc: cli.Info{Name: "one-haproxy", Summary: "HAProxy: TCP load balancer (not implemented yet)", Kind: cli.Daemon}})
}
