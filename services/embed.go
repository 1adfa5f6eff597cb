// Package services holds the OpenRC scripts of the appliance, one per row of
// the user guide's service table; `install` writes them to /etc/init.d.
package services

import (
	"embed"
	"fmt"
	"strings"
)

// Every file of this directory but this one is an OpenRC script.
//
//go:embed *
var scripts embed.FS

// Script returns the OpenRC script called name.
func Script(name string) ([]byte, error) {
	b, err := scripts.ReadFile(name)
	if err != nil || strings.HasSuffix(name, ".go") {
		return nil, fmt.Errorf("no OpenRC script %q in this build", name)
	}
	return b, nil
}

// Names lists every script.
func Names() []string {
	ents, _ := scripts.ReadDir(".")
	var out []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".go") {
			out = append(out, e.Name())
		}
	}
	return out
}
