// Command one-wg is the WireGuard VPN server of the Virtual Router; see --help.
package main

import (
	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/wg"
)

func main() { cli.Main(wg.Service{}) }
