// Command one-lvs is the LVS (keepalived IPVS) load balancer of the Virtual Router; see --help.
package main

import (
	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/lvs"
)

func main() { cli.Main(lvs.Service{}) }
