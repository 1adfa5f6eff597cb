package keepalived

import (
	"context"
	"fmt"

	"github.com/hypercx/vrouter/pkg/openrc"
)

// Plan is the OpenRC verb that brings keepalived in line with its live
// configuration: "" (nothing), "start", "reload" or "restart".
//
// A running keepalived is only restarted when the VRRP layout changed (an
// instance added or removed, a NIC, VRID or VRRP version changed): a
// restart releases the VIPs, a failover. Any other change is a reload,
// which keeps every instance in its state.
func Plan(st openrc.State, written, layoutChanged bool) string {
	switch st {
	case openrc.Started, openrc.Starting:
		switch {
		case layoutChanged:
			return "restart"
		case written:
			return "reload"
		}
		return ""
	case openrc.Crashed:
		return "restart"
	}
	return "start"
}

// Converge runs Plan's verb through the service manager and returns it.
func Converge(ctx context.Context, svcs openrc.Services, written, layoutChanged bool) (string, error) {
	if !svcs.Installed(Service) {
		return "", fmt.Errorf("converging keepalived: no OpenRC script %s (run one-failover install)", Service)
	}
	st, err := svcs.Status(ctx, Service)
	if err != nil {
		return "", fmt.Errorf("converging keepalived: %w", err)
	}
	verb := Plan(st, written, layoutChanged)
	if verb == "" {
		return "", nil
	}
	if err := svcs.Run(ctx, Service, verb); err != nil {
		return verb, fmt.Errorf("converging keepalived: %w", err)
	}
	return verb, nil
}

// Reload makes a running keepalived read its configuration again (for a
// writer of conf.d such as one-lvs); a keepalived that is not running reads
// it when it starts.
func Reload(ctx context.Context, svcs openrc.Services) error {
	if !svcs.Installed(Service) {
		return nil
	}
	st, err := svcs.Status(ctx, Service)
	if err != nil {
		return fmt.Errorf("reloading keepalived: %w", err)
	}
	if st != openrc.Started {
		return nil
	}
	if err := svcs.Run(ctx, Service, "reload"); err != nil {
		return fmt.Errorf("reloading keepalived: %w", err)
	}
	return nil
}
