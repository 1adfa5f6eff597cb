// Command one-failover is the failover service of the Virtual Router; see --help.
package main

import (
	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/failover"
)

func main() { cli.Main(failover.Service{}) }
