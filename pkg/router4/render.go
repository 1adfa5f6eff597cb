package router4

import (
	"fmt"
	"strings"
)

// SysctlFile persists the forwarding settings across reboots.
const SysctlFile = "/etc/sysctl.d/98-Router4.conf"

// Setting is one sysctl key and value.
type Setting struct{ Key, Value string }

// Desired is the rendered state: the settings in the order they must be
// applied (the global switches first: writing them resets every interface),
// and the persisted file holding the same lines.
type Desired struct {
	Settings []Setting
	File     []byte
	// Untouched are the management NICs, whose value is preserved.
	Untouched []string
}

// owns reports whether d sets the forwarding of interface n.
func (d Desired) owns(n string) bool {
	k := ForwardingKey(n)
	for _, st := range d.Settings {
		if st.Key == k {
			return true
		}
	}
	return false
}

// ForwardingKey is the per-interface forwarding sysctl.
func ForwardingKey(nic string) string { return "net.ipv4.conf." + nic + ".forwarding" }

// Render turns the spec into sysctl settings and the sysctl.d file.
func Render(s Spec) Desired {
	d := Desired{
		Settings: []Setting{
			{"net.ipv4.ip_forward", "0"},
			{"net.ipv4.conf.all.forwarding", "0"},
			{"net.ipv4.conf.default.forwarding", "0"},
		},
		Untouched: s.Management,
	}
	on := map[string]bool{}
	for _, n := range s.Forward {
		on[n] = true
	}
	for _, n := range mergeByIndex(s.Forward, s.Off) {
		v := "0"
		if on[n] {
			v = "1"
		}
		d.Settings = append(d.Settings, Setting{ForwardingKey(n), v})
	}
	var b strings.Builder
	for _, st := range d.Settings {
		fmt.Fprintf(&b, "%s = %s\n", st.Key, st.Value)
	}
	d.File = []byte(b.String())
	return d
}

// mergeByIndex merges two lists of NIC names sorted by index.
func mergeByIndex(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		if j >= len(b) || (i < len(a) && nicIndex(a[i]) < nicIndex(b[j])) {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return out
}

func nicIndex(n string) int {
	i := 0
	for _, c := range strings.TrimPrefix(n, "eth") {
		i = i*10 + int(c-'0')
	}
	return i
}
