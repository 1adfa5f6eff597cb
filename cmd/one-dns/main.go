// Command one-dns is the DNS service of the Virtual Router (unbound); see --help.
package main

import (
	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/dns"
)

func main() { cli.Main(dns.Service{}) }
