package router4

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/sysctl"
)

// Result says what Apply did.
type Result struct {
	Writes  int      // sysctl writes
	Missing []string // keys of interfaces the kernel does not have
	File    bool     // the sysctl.d file was rewritten
}

// Apply writes the file and converges the live values, writing only those
// that differ, in order. When a global switch has to change (which resets
// every interface) every interface Router4 does not set gets its previous
// value back: the management NICs, and the links other services made and
// set (one-wg's wg0 forwards the VPN's traffic).
func Apply(ctx context.Context, sc sysctl.Interface, root fsroot.Root, d Desired, log *slog.Logger) (Result, error) {
	var res Result
	changed, err := root.WriteFile(SysctlFile, d.File, 0o644)
	if err != nil {
		return res, err
	}
	res.File = changed
	saved := map[string]string{}
	others, err := sc.Interfaces()
	if err != nil {
		return res, fmt.Errorf("listing interfaces: %w", err)
	}
	for _, n := range append(others, d.Untouched...) {
		if d.owns(n) {
			continue
		}
		if v, err := sc.Get(ForwardingKey(n)); err == nil {
			saved[n] = v
		}
	}
	globalChanged := false
	for _, st := range d.Settings {
		cur, err := sc.Get(st.Key)
		if errors.Is(err, fs.ErrNotExist) {
			res.Missing = append(res.Missing, st.Key)
			continue
		}
		if err != nil {
			return res, fmt.Errorf("reading %s: %w", st.Key, err)
		}
		if cur == st.Value {
			continue
		}
		if err := sc.Set(st.Key, st.Value); err != nil {
			return res, fmt.Errorf("setting %s = %s: %w", st.Key, st.Value, err)
		}
		res.Writes++
		if st.Key == "net.ipv4.ip_forward" || st.Key == "net.ipv4.conf.all.forwarding" {
			globalChanged = true
		}
		log.Debug("sysctl", "key", st.Key, "value", st.Value)
	}
	if globalChanged {
		for n, v := range saved {
			if cur, _ := sc.Get(ForwardingKey(n)); cur != v {
				if err := sc.Set(ForwardingKey(n), v); err != nil {
					return res, fmt.Errorf("restoring the forwarding of %s: %w", n, err)
				}
				res.Writes++
			}
		}
	}
	return res, nil
}

// Diff lists the settings whose live value differs.
func Diff(sc sysctl.Interface, d Desired) (drift, missing []string, err error) {
	for _, st := range d.Settings {
		cur, err := sc.Get(st.Key)
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, st.Key)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", st.Key, err)
		}
		if cur != st.Value {
			drift = append(drift, fmt.Sprintf("%s is %s, want %s", st.Key, cur, st.Value))
		}
	}
	return drift, missing, nil
}
