// Command vrlab runs the Virtual Router lab: `vrlab demo` builds the HA lab
// in throwaway namespaces (two router instances on shared public and private
// segments, an internet host, a VM), installs every service in both with its
// own install verb, boots them from the example context scripts/lab/demo.env
// as a boot or recontextualization does, checks traffic for every feature
// through the floating IPs, fails the master over, prints what it checked
// and cleans up.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/hypercx/vrouter/tests/lab"
)

func main() {
	verbose := flag.Bool("v", false, "print every command's output")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: vrlab [-v] demo")
	}
	flag.Parse()
	if flag.NArg() != 1 || flag.Arg(0) != "demo" {
		flag.Usage()
		os.Exit(2)
	}
	if why := lab.CanRun(); why != "" {
		fmt.Fprintln(os.Stderr, "vrlab:", why)
		os.Exit(1)
	}
	ok, err := demo(*verbose)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vrlab:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}
