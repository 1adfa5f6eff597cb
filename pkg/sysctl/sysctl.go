// Package sysctl reads and writes kernel parameters through /proc/sys (under
// the --root directory), and offers a fake for tests.
package sysctl

import (
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/hypercx/vrouter/pkg/fsroot"
)

// Interface is what services need of sysctl.
type Interface interface {
	Get(key string) (string, error)
	Set(key, value string) error
	// Interfaces lists the network interfaces with IPv4 settings
	// (net.ipv4.conf.<if>), "all" and "default" left out.
	Interfaces() ([]string, error)
}

// Proc is the real /proc/sys.
type Proc struct{ Root fsroot.Root }

// Path is the /proc/sys file of key ("net.ipv4.conf.eth0.forwarding").
func Path(key string) string { return "/proc/sys/" + strings.ReplaceAll(key, ".", "/") }

// Get reads key; a key that does not exist (an interface that is not there)
// returns an error matching fs.ErrNotExist.
func (p Proc) Get(key string) (string, error) {
	b, err := os.ReadFile(p.Root.Path(Path(key)))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// Set writes key.
func (p Proc) Set(key, value string) error {
	f, err := os.OpenFile(p.Root.Path(Path(key)), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Interfaces lists the directories of /proc/sys/net/ipv4/conf.
func (p Proc) Interfaces() ([]string, error) {
	ents, err := os.ReadDir(p.Root.Path("/proc/sys/net/ipv4/conf"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); n != "all" && n != "default" {
			out = append(out, n)
		}
	}
	return out, nil
}

// Fake is an in-memory sysctl tree that models the forwarding quirk: writing
// net.ipv4.ip_forward or net.ipv4.conf.all.forwarding with a new value resets
// every interface's forwarding to it.
type Fake struct {
	mu     sync.Mutex
	Values map[string]string
	Writes int
}

// NewFake returns a fake holding values.
func NewFake(values map[string]string) *Fake {
	f := &Fake{Values: map[string]string{}}
	for k, v := range values {
		f.Values[k] = v
	}
	return f
}

// Get reads a key.
func (f *Fake) Get(key string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.Values[key]
	if !ok {
		return "", &fs.PathError{Op: "open", Path: Path(key), Err: fs.ErrNotExist}
	}
	return v, nil
}

// Set writes a key that exists.
func (f *Fake) Set(key, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.Values[key]
	if !ok {
		return &fs.PathError{Op: "open", Path: Path(key), Err: fs.ErrNotExist}
	}
	f.Writes++
	f.Values[key] = value
	if (key == "net.ipv4.ip_forward" || key == "net.ipv4.conf.all.forwarding") && old != value {
		for k := range f.Values {
			if strings.HasPrefix(k, "net.ipv4.conf.") && strings.HasSuffix(k, ".forwarding") && k != "net.ipv4.conf.default.forwarding" {
				f.Values[k] = value
			}
		}
		f.Values["net.ipv4.ip_forward"] = value
	}
	return nil
}

// Interfaces lists the interfaces that have a forwarding key.
func (f *Fake) Interfaces() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.Values {
		n, ok := strings.CutPrefix(k, "net.ipv4.conf.")
		if n, ok = strings.CutSuffix(n, ".forwarding"); ok && n != "all" && n != "default" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// String lists the values, sorted, for test failure messages.
func (f *Fake) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := make([]string, 0, len(f.Values))
	for k := range f.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, f.Values[k])
	}
	return b.String()
}
