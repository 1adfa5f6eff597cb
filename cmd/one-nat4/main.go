// Command one-nat4 is a service of the Virtual Router; see --help.
package main

import (
	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/nat4"
)

func main() { cli.Main(nat4.Service{}) }
