package wg

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/hypercx/vrouter/pkg/onegate"
)

// Gate is what one-wg needs of OneGate (the onegate.Client methods it
// calls).
type Gate interface {
	VRouter(ctx context.Context) (*onegate.VRouter, error)
	VM(ctx context.Context) (*onegate.VM, error)
	VMByID(ctx context.Context, id int) (*onegate.VM, error)
	UpdateVM(ctx context.Context, id int, attrs map[string]string) error
	EraseVM(ctx context.Context, id int, keys ...string) error
}

// RouterVM is a VM of the virtual router as OneGate showed it.
type RouterVM struct {
	ID int // onegate.Self when this VM is not part of a virtual router
	// Attrs are its ONEGATE_VNF_WG_* attributes; nil when it could not
	// be read (Err).
	Attrs map[string]string
	Err   error
}

// Name is how logs name the VM.
func (v RouterVM) Name() string {
	if v.ID == onegate.Self {
		return "this VM"
	}
	return "VM " + strconv.Itoa(v.ID)
}

// Shared is what OneGate holds for the router: its VMs and their stored
// configurations.
type Shared struct {
	VMs []RouterVM
	// Warnings: VMs that could not be read.
	Warnings []string
}

// Stored lists the stored configurations of the VMs that were read.
func (s Shared) Stored() []Stored {
	var out []Stored
	for _, v := range s.VMs {
		if v.Err == nil {
			out = append(out, Stored{Source: v.Name(), Attrs: v.Attrs})
		}
	}
	return out
}

// refused reports an answer saying the object is not there or not visible
// to this VM (400, 404), as opposed to an outage.
func refused(err error) bool {
	var he *onegate.HTTPError
	return errors.As(err, &he) && (he.Status == http.StatusBadRequest || he.Status == http.StatusNotFound)
}

// Fetch reads the stored configuration of every VM of the virtual router
// (GET /vrouter, then GET /vms/<id>); a VM that is not part of a virtual
// router reads its own (GET /vm). It fails when the router or none of its
// VMs can be read: keys must not be chosen without seeing what is stored.
func Fetch(ctx context.Context, g Gate) (Shared, error) {
	var sh Shared
	ids := []int{onegate.Self}
	vr, err := g.VRouter(ctx)
	switch {
	case err == nil && vr != nil && len(vr.VMs) > 0:
		ids = append([]int{}, vr.VMs...)
	case err == nil || refused(err):
		// Not a virtual router's VM: only this VM's template.
	default:
		return sh, fmt.Errorf("reading the virtual router from OneGate: %w", err)
	}
	read := 0
	for _, id := range ids {
		var vm *onegate.VM
		if id == onegate.Self {
			vm, err = g.VM(ctx)
		} else {
			vm, err = g.VMByID(ctx, id)
		}
		rv := RouterVM{ID: id}
		if vm == nil {
			if err == nil {
				err = errors.New("no document")
			}
			rv.Err = err
			sh.Warnings = append(sh.Warnings, fmt.Sprintf("reading %s from OneGate: %v", rv.Name(), err))
		} else {
			rv.Attrs = WGAttrs(vm.UserTemplate)
			read++
		}
		sh.VMs = append(sh.VMs, rv)
	}
	if read == 0 {
		return sh, fmt.Errorf("reading the router's VMs from OneGate: %s", strings.Join(sh.Warnings, "; "))
	}
	return sh, nil
}

// Outdated lists the VMs whose stored attributes differ from attrs.
func (s Shared) Outdated(attrs map[string]string) []string {
	var out []string
	for _, v := range s.VMs {
		if up, erase := diffAttrs(v, attrs); len(up) > 0 || len(erase) > 0 {
			out = append(out, v.Name())
		}
	}
	return out
}

// diffAttrs is what VM v needs to hold attrs: the attributes to set and the
// stale peer attributes to erase. A VM that could not be read gets all.
func diffAttrs(v RouterVM, attrs map[string]string) (map[string]string, []string) {
	up := map[string]string{}
	for k, val := range attrs {
		if v.Attrs == nil || v.Attrs[k] != val {
			up[k] = val
		}
	}
	var erase []string
	for k := range v.Attrs {
		if _, ok := attrs[k]; !ok && isPeerAttr(k) {
			erase = append(erase, k)
		}
	}
	sort.Strings(erase)
	return up, erase
}

// PublishResult counts what Publish did.
type PublishResult struct {
	Updated, Erased int // VMs written, attributes erased
	Failed          []string
}

// Publish writes attrs to the user template of every VM of the router that
// does not hold them already, and erases the peer attributes they no
// longer have. The timestamp goes with the rest, in one update, so a
// reader never sees a new timestamp on an old configuration. It fails only
// when no VM could be written.
func Publish(ctx context.Context, g Gate, sh Shared, attrs map[string]string) (PublishResult, error) {
	var res PublishResult
	var errs []error
	wrote := false
	for _, v := range sh.VMs {
		up, erase := diffAttrs(v, attrs)
		if len(up) > 0 {
			if err := g.UpdateVM(ctx, v.ID, up); err != nil {
				res.Failed = append(res.Failed, v.Name())
				errs = append(errs, err)
				continue
			}
			res.Updated++
		}
		wrote = true
		if len(erase) > 0 {
			if err := g.EraseVM(ctx, v.ID, erase...); err != nil {
				res.Failed = append(res.Failed, v.Name())
				errs = append(errs, err)
				continue
			}
			res.Erased += len(erase)
		}
	}
	if !wrote && len(errs) > 0 {
		return res, fmt.Errorf("publishing the WireGuard configuration to OneGate: %w", errors.Join(errs...))
	}
	if len(errs) > 0 {
		return res, &PartialError{Err: errors.Join(errs...)}
	}
	return res, nil
}

// PartialError: some VMs hold the new configuration, others could not be
// written (they get it at the next start).
type PartialError struct{ Err error }

func (e *PartialError) Error() string {
	return "publishing to some router VMs failed: " + e.Err.Error()
}

func (e *PartialError) Unwrap() error { return e.Err }
