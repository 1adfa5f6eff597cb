package lb

import (
	"errors"
	"time"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/onegate"
)

// Defaults of the user guide.
const (
	DefaultRefresh = 30 * time.Second
	// MinRefresh keeps the loop from hammering OneGate (the original
	// busy-looped on a refresh rate of 0, reference §14.17).
	MinRefresh = time.Second
	MaxRefresh = 24 * time.Hour
)

// Vars are the service-wide variables of a family.
type Vars struct {
	Enabled, OneGate, Refresh string
}

// Config is a family's parsed context.
type Config struct {
	Enabled bool
	// OneGate: dynamic servers are discovered (…_ONEGATE_ENABLED).
	OneGate   bool
	Refresh   time.Duration
	Discovery Discovery
	// Gate is how to reach OneGate; nil when dynamic servers are off or the
	// context has no ONEGATE_ENDPOINT.
	Gate *onegate.Config
	// LBs are the static LBs, by index.
	LBs []LB
	// Ignored are set variables that have no effect for this family.
	Ignored []string
	// Topology is the context's NICs (placeholders of dynamic values are
	// resolved with it).
	Topology onecontext.Topology
	// Interfaces is the family's interface list without management NICs;
	// SkippedNICs are the management NICs it would have included.
	Interfaces  onecontext.Selection
	SkippedNICs []string
}

// FromContext parses the family's variables (root is where the OneGate
// token file is looked for). A disabled family reads only its switch: stale
// LB variables of a disabled service never fail a recontextualization.
func (f Family) FromContext(env onecontext.Env, root fsroot.Root, vars Vars) (Config, error) {
	var errs []error
	collect := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var c Config
	var err error
	c.Enabled, err = env.Bool(vars.Enabled, false)
	if err != nil || !c.Enabled {
		return Config{}, err
	}
	c.OneGate, err = env.Bool(vars.OneGate, false)
	collect(err)
	c.Refresh, err = env.Seconds(vars.Refresh, DefaultRefresh, MinRefresh, MaxRefresh)
	collect(err)
	c.Discovery, err = DiscoveryFromContext(env)
	collect(err)
	if c.OneGate {
		g, err := onegate.ConfigFromContext(env, root)
		switch {
		case err == nil:
			c.Gate = &g
		case !errors.Is(err, onegate.ErrNotConfigured):
			collect(err)
		}
	}
	c.Topology, err = env.Topology()
	if err != nil {
		return Config{}, errors.Join(append(errs, err)...)
	}
	sel, err := c.Topology.Interfaces(f.Interfaces, env.Get(f.Interfaces), onecontext.EmptyAll)
	if err != nil {
		return Config{}, errors.Join(append(errs, err)...)
	}
	c.Interfaces, c.SkippedNICs = sel.WithoutManagement(c.Topology)
	c.LBs, c.Ignored, err = f.ParseStatic(env, c.Topology, Owners(c.Topology, c.Interfaces))
	collect(err)
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}
