package lb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/onegate"
)

// Context variables of discovery, shared by LVS and HAProxy.
const (
	VarOneGateAPI = "ONEAPP_VNF_LB_ONEGATE_API"
	VarVRouterID  = "VROUTER_ID"
	VarServiceID  = "SERVICE_ID"
)

// API is where dynamic servers are discovered.
type API string

const (
	// APIVRouter: the leases with BACKEND=YES of the router's networks
	// (GET /vrouter, GET /vnet/<id>?extended=true, recursively).
	APIVRouter API = "vrouter"
	// APIService: the VMs of the router's OneFlow service (GET /service,
	// GET /vms/<id>).
	APIService API = "service"
	// APINone: the router is neither a virtual router nor in a service.
	APINone API = "none"
)

// Discovery says how this router finds its dynamic servers.
type Discovery struct {
	API API
	// ID filters the objects' <prefix>x_ID: VROUTER_ID (vrouter) or
	// SERVICE_ID (service).
	ID string
	// Why explains the choice (logged).
	Why string
}

// DiscoveryFromContext reads ONEAPP_VNF_LB_ONEGATE_API: auto (the default:
// the virtual router's networks when VROUTER_ID is set, else the OneFlow
// service when SERVICE_ID is set), vrouter or service. The object source and
// its parser always agree (the original could fetch networks and parse them
// as VMs, reference §14.12).
func DiscoveryFromContext(env onecontext.Env) (Discovery, error) {
	vr := strings.TrimSpace(env.Get(VarVRouterID))
	svc := strings.TrimSpace(env.Get(VarServiceID))
	raw := env.Get(VarOneGateAPI)
	switch strings.ToLower(strings.TrimSpace(raw)) {
	case "", "auto":
		switch {
		case vr != "":
			return Discovery{API: APIVRouter, ID: vr, Why: "VROUTER_ID is set"}, nil
		case svc != "":
			return Discovery{API: APIService, ID: svc, Why: "SERVICE_ID is set (OneFlow)"}, nil
		}
		return Discovery{API: APINone, Why: "neither VROUTER_ID nor SERVICE_ID is set (a standalone VM has no backends to discover)"}, nil
	case "vrouter":
		return Discovery{API: APIVRouter, ID: vr, Why: VarOneGateAPI + "=vrouter"}, nil
	case "service", "oneflow":
		return Discovery{API: APIService, ID: svc, Why: VarOneGateAPI + "=service"}, nil
	}
	return Discovery{}, onecontext.Errorf(VarOneGateAPI, raw, "use auto, vrouter or service")
}

// OneGate is what discovery needs of the OneGate client (*onegate.Client).
type OneGate interface {
	Networks(ctx context.Context) ([]onegate.VNet, error)
	ServiceVMs(ctx context.Context) ([]onegate.VM, error)
}

// ErrNoSource is returned by Fetch when the discovery has no API.
var ErrNoSource = errors.New("no source of dynamic backends")

// Fetch returns the objects that may publish dynamic servers, each VM once:
// in virtual-router mode the leases with BACKEND=YES of the router's
// networks (their copy of the VM's ONEGATE_* attributes), in OneFlow mode
// the service's VMs (the ONEGATE_* attributes of their user templates).
// When some answers were last good ones the objects come with an error
// wrapping onegate.ErrStale and are usable; any other error comes without
// objects, and the caller keeps what it has.
func Fetch(ctx context.Context, c OneGate, d Discovery) ([]Object, error) {
	var out []Object
	seen := map[int]bool{}
	add := func(vm int, attrs map[string]string) {
		if vm == onegate.None || seen[vm] {
			return
		}
		seen[vm] = true
		m := map[string]string{}
		for k, v := range attrs {
			if strings.HasPrefix(k, "ONEGATE_") {
				m[k] = v
			}
		}
		out = append(out, Object{VM: vm, Attrs: m})
	}
	switch d.API {
	case APIVRouter:
		nets, err := c.Networks(ctx)
		if nets == nil && err != nil {
			return nil, fmt.Errorf("fetching the router's networks: %w", err)
		}
		for _, n := range nets {
			for _, l := range n.Leases() {
				if l.Backend {
					add(l.VM, l.OneGate)
				}
			}
		}
		return out, err
	case APIService:
		vms, err := c.ServiceVMs(ctx)
		if vms == nil && err != nil {
			return nil, fmt.Errorf("fetching the service's VMs: %w", err)
		}
		for _, vm := range vms {
			add(vm.ID, vm.UserTemplate)
		}
		return out, err
	}
	return nil, ErrNoSource
}
