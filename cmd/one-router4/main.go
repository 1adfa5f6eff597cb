// Command one-router4 is a service of the Virtual Router; see --help.
package main

import (
	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/router4"
)

func main() { cli.Main(router4.Service{}) }
