// Command vrlab runs the Virtual Router lab: `vrlab demo` builds the lab
// network in throwaway namespaces, configures a router instance from the
// example context scripts/lab/demo.env through its real OpenRC services,
// checks traffic for every feature, prints what it checked and cleans up.
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
