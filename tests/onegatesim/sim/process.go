package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hypercx/vrouter/tests/lab"
)

// Fixtures is the directory of the standard fixtures (tests/onegatesim/testdata).
func Fixtures() string { return filepath.Join(lab.RepoRoot(), "tests", "onegatesim", "testdata") }

// Process is the simulator running as bin/lab/onegatesim in a lab host, for
// kernel and end-to-end tests. Its fixture directory is a copy the test may
// change at will: the simulator re-reads it on every request.
type Process struct {
	URL   string // http://<addr>, the ONEGATE_ENDPOINT to give the router
	Dir   string
	Token string
	Proc  *lab.Proc
}

// Start copies the fixtures of dir ("" for the standard ones) to a new
// directory under the lab's, and runs the simulator in h listening on addr
// (host:port, an address of h). It returns once the simulator listens; the
// lab stops it at Close.
func Start(l *lab.Lab, h lab.Host, addr, token, dir string) (*Process, error) {
	if dir == "" {
		dir = Fixtures()
	}
	work, err := os.MkdirTemp(l.Dir, "onegate-")
	if err != nil {
		return nil, err
	}
	if err := CopyFixtures(dir, work); err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(work, ".token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		return nil, err
	}
	// The token goes through a file so that it is not on the command line.
	p, err := l.Start(h, "onegatesim", "onegatesim listening on", lab.Bin("onegatesim"), "--listen", addr, "--dir", work, "--token-file", tokenFile)
	if err != nil {
		return nil, fmt.Errorf("starting the OneGate simulator: %w", err)
	}
	return &Process{URL: "http://" + addr, Dir: work, Token: token, Proc: p}, nil
}

// CopyFixtures copies the JSON fixtures of directory from into to.
func CopyFixtures(from, to string) error {
	ents, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("reading fixtures: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Env is the context a router needs to use this simulator as VM vmid.
func (p *Process) Env(vmid int) []string {
	return []string{"ONEGATE_ENDPOINT=" + p.URL, "TOKENTXT=" + p.Token, "VMID=" + strconv.Itoa(vmid)}
}

// WriteDocument replaces the fixture name ("vrouter", "vnet-3", "vm-21",
// "service") atomically: the next request sees the whole new document.
func (p *Process) WriteDocument(name string, doc []byte) error {
	if !validName(name) {
		return fmt.Errorf("document names are vrouter, service, vnet-<id>, vm-<id>, not %q", name)
	}
	return p.writeAtomic(name+".json", doc)
}

// RemoveDocument deletes the fixture name.
func (p *Process) RemoveDocument(name string) error {
	err := os.Remove(filepath.Join(p.Dir, name+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// SetFaults replaces faults.json; no faults removes it. Counts start again
// with every new content.
func (p *Process) SetFaults(faults ...Fault) error {
	if len(faults) == 0 {
		return p.RemoveDocument("faults")
	}
	b, err := json.Marshal(faults)
	if err != nil {
		return err
	}
	return p.writeAtomic("faults.json", b)
}

func (p *Process) writeAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(p.Dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(p.Dir, name))
}
