// Package router4 is the Router4 module: per-interface IPv4 forwarding for
// the NICs listed in ONEAPP_VNF_ROUTER4_INTERFACES (default: all), off for
// the other NICs of the context, management NICs never touched. The global
// switches stay off, so only traffic entering a routed NIC is forwarded.
package router4

import (
	"github.com/hypercx/vrouter/pkg/onecontext"
)

// Context variables.
const (
	VarEnabled    = "ONEAPP_VNF_ROUTER4_ENABLED"
	VarInterfaces = "ONEAPP_VNF_ROUTER4_INTERFACES"
)

// Spec is the parsed context.
type Spec struct {
	Enabled bool
	// Forward are the NICs that forward, Off the other NICs of the context;
	// both in index order. Management NICs are in neither.
	Forward, Off []string
	Management   []string
}

// FromContext parses the Router4 variables. Invalid values are errors naming
// the variable; nothing is applied then.
func FromContext(env onecontext.Env) (Spec, error) {
	enabled, err := env.Bool(VarEnabled, true)
	if err != nil {
		return Spec{}, err
	}
	sel, top, err := env.Interfaces(VarInterfaces, onecontext.EmptyAll)
	if err != nil {
		return Spec{}, err
	}
	spec := Spec{Enabled: enabled, Management: top.Management()}
	for _, n := range top.NICs {
		switch {
		case n.Management:
		case enabled && sel.Has(n.Name):
			spec.Forward = append(spec.Forward, n.Name)
		default:
			spec.Off = append(spec.Off, n.Name)
		}
	}
	return spec, nil
}

// Stopped is the state stop converges to: forwarding off on every NIC of the
// context but the management ones. It reads the context leniently, so stop
// works even when the context does not parse.
func Stopped(env onecontext.Env) Spec {
	mgmt := map[string]bool{}
	for _, m := range env.ManagementNICs() {
		mgmt[m] = true
	}
	spec := Spec{}
	for _, n := range env.NICNames() {
		if mgmt[n] {
			spec.Management = append(spec.Management, n)
		} else {
			spec.Off = append(spec.Off, n)
		}
	}
	return spec
}
