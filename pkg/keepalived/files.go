package keepalived

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hypercx/vrouter/pkg/fsroot"
)

// Checker judges a complete candidate configuration (its main file).
type Checker interface {
	Check(ctx context.Context, mainFile string) error
}

// Exec is the real checker: `keepalived -t -f <main>`. keepalived exits
// non-zero on warnings too (a sync group of one, authentication with
// VRRPv3, an interval it would round), which is what we want: the rendered
// file must be exactly what runs.
type Exec struct {
	// Command is the keepalived binary ("keepalived" when empty).
	Command string
}

// Check runs keepalived's configuration test.
func (e Exec) Check(ctx context.Context, mainFile string) error {
	bin := e.Command
	if bin == "" {
		bin = "keepalived"
	}
	if _, err := exec.LookPath(bin); err != nil {
		return fmt.Errorf("checking keepalived configuration: keepalived is not installed: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-t", "-f", mainFile)
	cmd.Stdout, cmd.Stderr = &out, &out
	// keepalived's test runs in child processes that may still write after
	// the parent exits; wait a little for them, never forever.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("keepalived -t: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Files writes keepalived's configuration under a root.
type Files struct {
	Root    fsroot.Root
	Checker Checker
}

// Write replaces the given files (MainFile, or files of ConfDir; the map is
// path → content) once keepalived accepts the whole configuration they form
// with the other live files of ConfDir. Nothing is written when every file
// already holds its content; nothing is replaced when the check fails. It
// returns the paths it changed.
func (f Files) Write(ctx context.Context, set map[string][]byte) ([]string, error) {
	var paths []string
	for p := range set {
		if p != MainFile && path.Dir(p) != ConfDir {
			return nil, fmt.Errorf("writing keepalived configuration: %s is neither %s nor in %s", p, MainFile, ConfDir)
		}
		paths = append(paths, p)
	}
	// conf.d before the main file, so an include never points at nothing.
	sort.Slice(paths, func(i, j int) bool {
		if (paths[i] == MainFile) != (paths[j] == MainFile) {
			return paths[j] == MainFile
		}
		return paths[i] < paths[j]
	})
	var stale []string
	for _, p := range paths {
		if old, err := f.Root.ReadFile(p); err != nil || !bytes.Equal(old, set[p]) {
			stale = append(stale, p)
		}
	}
	if len(stale) == 0 {
		return nil, nil
	}
	if err := f.check(ctx, set); err != nil {
		return nil, err
	}
	var changed []string
	for _, p := range paths {
		wrote, err := f.Root.WriteFile(p, set[p], FileMode)
		if err != nil {
			return changed, fmt.Errorf("writing keepalived configuration: %w", err)
		}
		if wrote {
			changed = append(changed, p)
		}
	}
	return changed, nil
}

// check assembles the candidate configuration in a private directory (the
// live conf.d files, overridden by the candidates) and lets keepalived
// judge it.
func (f Files) check(ctx context.Context, set map[string][]byte) error {
	if f.Checker == nil {
		return errors.New("checking keepalived configuration: no checker")
	}
	dir, err := os.MkdirTemp("", "keepalived-check-")
	if err != nil {
		return fmt.Errorf("checking keepalived configuration: %w", err)
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "conf.d")
	if err := os.Mkdir(conf, 0o700); err != nil {
		return fmt.Errorf("checking keepalived configuration: %w", err)
	}
	files := map[string][]byte{}
	live, _ := filepath.Glob(f.Root.Path(ConfDir) + "/*.conf")
	for _, l := range live {
		b, err := os.ReadFile(l)
		if err != nil {
			return fmt.Errorf("checking keepalived configuration: reading %s: %w", l, err)
		}
		files[filepath.Base(l)] = b
	}
	for p, b := range set {
		if p != MainFile {
			files[path.Base(p)] = b
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(conf, name), b, 0o600); err != nil {
			return fmt.Errorf("checking keepalived configuration: %w", err)
		}
	}
	main := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(main, []byte("include "+conf+"/*.conf\n"), 0o600); err != nil {
		return fmt.Errorf("checking keepalived configuration: %w", err)
	}
	if err := f.Checker.Check(ctx, main); err != nil {
		// The candidate lives in a temporary directory: name the real files.
		msg := strings.ReplaceAll(err.Error(), conf, ConfDir)
		return fmt.Errorf("keepalived rejects the new configuration (the live files are unchanged): %s", msg)
	}
	return nil
}
