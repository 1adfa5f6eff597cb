// Command one-haproxy is the HAProxy load balancer of the Virtual Router; see --help.
package main

import (
	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/haproxy"
)

func main() { cli.Main(haproxy.Service{}) }
