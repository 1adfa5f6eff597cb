package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// stepRecontext runs one-context's hook again on both routers at once with
// the same context, as OpenNebula does when it re-contextualizes a virtual
// router without a change: one-failover reloads the context, finds every
// service's desired state unchanged, and nothing restarts or reloads and
// nothing changes in the kernel (rules, addresses, sysctls).
func stepRecontext(w *world, r *report) error {
	fmt.Println("== recontextualization with the same context: nothing restarts, the kernel stays as it is")
	m, err := w.master()
	if err != nil {
		return r.add("recontext", "a master to look at", 0, err)
	}
	type snap struct {
		kernel lab.KernelState
		starts map[string]string
	}
	before := make([]snap, len(w.routers))
	for i, rt := range w.routers {
		k, err := rt.Kernel()
		if err != nil {
			return r.add("recontext", rt.Role+": kernel state", 0, err)
		}
		before[i] = snap{k, rt.Starts()}
	}
	since := time.Now()
	return r.figure("recontext", "same context on vr1 and vr2 (one-context hook): service restarts, kernel changes", func() (string, error) {
		if err := w.ha.Contextualize(w.context); err != nil {
			return "", err
		}
		// one-failover takes the new context a moment after the driver
		// signals it; the master then reconciles its services.
		err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
			for _, rt := range w.routers {
				if len(rt.FailoverLines(since, `msg="context reloaded"`)) == 0 {
					return fmt.Errorf("%s: one-failover did not reload the context", rt.Role)
				}
			}
			if len(m.FailoverLines(since, "msg=applied", "action=reconcile")) == 0 {
				return fmt.Errorf("%s: no reconcile after the context reload", m.Role)
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		restarts, changes := 0, 0
		var diffs []string
		for i, rt := range w.routers {
			k, err := rt.Kernel()
			if err != nil {
				return "", err
			}
			d := lab.ChangedStarts(before[i].starts, rt.Starts())
			kd := before[i].kernel.Diff(k)
			restarts += len(d)
			changes += len(kd)
			for _, x := range append(d, kd...) {
				diffs = append(diffs, rt.Role+": "+x)
			}
		}
		fig := fmt.Sprintf("%d restarts, %d kernel changes", restarts, changes)
		if len(diffs) > 0 {
			return fig, fmt.Errorf("%s", strings.Join(diffs, "; "))
		}
		fmt.Printf("           %s\n", fig)
		return fig, nil
	})
}

// stepMemory reports the resident size of every long-running one-* daemon
// on each router (the original's Ruby daemons take about 25 MB each).
func stepMemory(w *world, r *report) error {
	fmt.Println("== memory: the resident size of the one-* daemons")
	var first error
	for _, rt := range w.routers {
		role := rt.Role
		if lab.HasAddr(rt, "eth1", lab.PrivateVIP) {
			role += " (master)"
		} else {
			role += " (backup)"
		}
		rss := rt.DaemonRSS()
		names := make([]string, 0, len(rss))
		for n := range rss {
			names = append(names, n)
		}
		sort.Strings(names)
		sum := 0
		var parts []string
		for _, n := range names {
			sum += rss[n]
			parts = append(parts, fmt.Sprintf("%s %.1f MB", n, float64(rss[n])/1024))
		}
		what := role + ": " + strings.Join(parts, ", ")
		err := r.figure("memory", what, func() (string, error) {
			if len(rss) == 0 {
				return "", fmt.Errorf("no one-* daemon found")
			}
			return fmt.Sprintf("%.1f MB in %d daemons", float64(sum)/1024, len(rss)), nil
		})
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}
