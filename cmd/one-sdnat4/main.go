// Command one-sdnat4 is the SDNAT4 service of the Virtual Router (public
// addresses mapped 1:1 to VMs, discovered through OneGate); see --help.
package main

import (
	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/sdnat4"
)

func main() { cli.Main(sdnat4.Service{}) }
