package onegate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Networks returns the networks of this virtual router: the network of each
// router NIC, followed to its parent network (when it is a reservation) and
// to its reservations (child networks holding its leases), recursively, each
// network once, depth first in NIC order. Cycles (a reservation and its
// parent name each other) are harmless, and discovery stops with an error
// beyond Config.MaxNetworks networks.
//
// A followed network OneGate refuses to show (400 or 404: OneGate only shows
// a router the networks of its NICs, their parents, reservations and
// siblings) is skipped with a warning; any other failure fails the call. When
// some documents are last good answers the result comes with an error
// wrapping ErrStale and is usable.
func (c *Client) Networks(ctx context.Context) ([]VNet, error) {
	vr, err := c.VRouter(ctx)
	if vr == nil {
		return nil, fmt.Errorf("discovering the router's networks: %w", err)
	}
	d := discovery{c: c, seen: map[int]bool{}}
	if err != nil {
		d.stale = append(d.stale, err)
	}
	for _, nic := range vr.NICs {
		if err := d.visit(ctx, nic.NetworkID, false); err != nil {
			return nil, fmt.Errorf("discovering the router's networks: %w", err)
		}
	}
	return d.out, errors.Join(d.stale...)
}

type discovery struct {
	c     *Client
	seen  map[int]bool
	out   []VNet
	stale []error
}

func (d *discovery) visit(ctx context.Context, id int, followed bool) error {
	if id == None || d.seen[id] {
		return nil
	}
	if len(d.seen) >= d.c.cfg.MaxNetworks {
		return fmt.Errorf("more than %d networks", d.c.cfg.MaxNetworks)
	}
	d.seen[id] = true
	n, err := d.c.VNet(ctx, id)
	switch {
	case n == nil && followed && refused(err):
		d.c.log.Warn("OneGate does not show a related network; skipping it", "vnet", id, "err", err)
		return nil
	case n == nil:
		return err
	case err != nil:
		d.stale = append(d.stale, err)
	}
	d.out = append(d.out, *n)
	if err := d.visit(ctx, n.ParentID, true); err != nil {
		return err
	}
	for _, child := range n.Reservations() {
		if err := d.visit(ctx, child, true); err != nil {
			return err
		}
	}
	return nil
}

// refused reports a 400 or 404 answer: the object is gone or not visible
// from this VM, as opposed to an outage or a permission problem (401, 403),
// which must not pass for "no such object".
func refused(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && (he.Status == http.StatusBadRequest || he.Status == http.StatusNotFound)
}

// ServiceVMs returns the VMs of this VM's OneFlow service (GET /service, then
// GET /vms/<id> for each node, in role order, each once). A VM that has left
// the service meanwhile (400 or 404) is skipped; stale answers are used as
// in Networks.
func (c *Client) ServiceVMs(ctx context.Context) ([]VM, error) {
	svc, err := c.Service(ctx)
	if svc == nil {
		return nil, fmt.Errorf("listing the service's VMs: %w", err)
	}
	var stale []error
	if err != nil {
		stale = append(stale, err)
	}
	var out []VM
	for _, id := range svc.VMIDs() {
		vm, err := c.VMByID(ctx, id)
		switch {
		case vm == nil && refused(err):
			c.log.Warn("OneGate does not show a service VM; skipping it", "vm", id, "err", err)
			continue
		case vm == nil:
			return nil, fmt.Errorf("listing the service's VMs: %w", err)
		case err != nil:
			stale = append(stale, err)
		}
		out = append(out, *vm)
	}
	return out, errors.Join(stale...)
}
