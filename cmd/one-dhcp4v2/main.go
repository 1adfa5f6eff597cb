// Command one-dhcp4v2 is the DHCP4 service of the Virtual Router; see --help.
package main

import (
	"log/slog"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/dhcp4"
	"github.com/hypercx/vrouter/pkg/dhcp4/onelease"
	"github.com/hypercx/vrouter/pkg/fsroot"
)

func main() {
	// The server's plugins, registered here and nowhere else: one fresh set
	// of instances per NIC server.
	cli.Main(dhcp4.Service{Plugins: func(root fsroot.Root, log *slog.Logger) dhcp4.PluginSet {
		return onelease.NewSet(onelease.Deps{Root: root, Log: log})
	}})
}
