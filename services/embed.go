// Package services holds the OpenRC scripts of the appliance, one per row of
// the user guide's service table; `install` writes them to /etc/init.d.
package services

import (
	"embed"
	"fmt"
)

//go:embed one-*
var scripts embed.FS

// Script returns the OpenRC script called name.
func Script(name string) ([]byte, error) {
	b, err := scripts.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("no OpenRC script %q in this build", name)
	}
	return b, nil
}

// Names lists every script.
func Names() []string {
	ents, _ := scripts.ReadDir(".")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
