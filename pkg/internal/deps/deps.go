//go:build tools

// Package deps pins modules that services import (or are about to), so
// go.mod stays stable while several of them are developed at once. It is
// never built.
package deps

import (
	_ "github.com/coredhcp/coredhcp/config"
	_ "github.com/coredhcp/coredhcp/handler"
	_ "github.com/coredhcp/coredhcp/plugins"
	_ "github.com/coredhcp/coredhcp/plugins/allocators/bitmap"
	_ "github.com/coredhcp/coredhcp/server"
	_ "github.com/insomniacslk/dhcp/dhcpv4"
	_ "github.com/vishvananda/netlink"
	_ "golang.zx2c4.com/wireguard/wgctrl"
	_ "golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	_ "rsc.io/qr"
)
