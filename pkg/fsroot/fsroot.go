// Package fsroot prefixes every path a service reads or writes with the
// --root directory, and writes files atomically: a temporary file in the same
// directory, synced, optionally checked by the daemon that will read it, and
// renamed over the old one only when its content changed. A failed write or
// check (a full disk, a config the daemon rejects) leaves the old file as it was.
package fsroot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Root is the directory every absolute path is taken under; "" and "/" are
// the machine's root.
type Root string

// Path returns p under the root.
func (r Root) Path(p string) string {
	if r == "" || r == "/" {
		return p
	}
	return filepath.Join(string(r), p)
}

// ReadFile reads p under the root.
func (r Root) ReadFile(p string) ([]byte, error) { return os.ReadFile(r.Path(p)) }

// Exists reports whether p exists under the root.
func (r Root) Exists(p string) bool {
	_, err := os.Lstat(r.Path(p))
	return err == nil
}

// MkdirAll creates directory p under the root.
func (r Root) MkdirAll(p string, mode fs.FileMode) error { return os.MkdirAll(r.Path(p), mode) }

// Remove deletes p under the root; a missing file is not an error.
func (r Root) Remove(p string) error {
	err := os.Remove(r.Path(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Check judges a candidate file before it replaces the live one, e.g. by
// running `keepalived -t -f <path>`.
type Check func(candidate string) error

// WriteFile writes data to p under the root atomically with mode, unless the
// file already holds exactly data with that mode. It reports whether it wrote.
func (r Root) WriteFile(p string, data []byte, mode fs.FileMode) (bool, error) {
	return r.WriteChecked(p, data, mode, nil)
}

// WriteChecked is WriteFile with a check run on the candidate file before the
// rename; if the check fails the live file is untouched.
func (r Root) WriteChecked(p string, data []byte, mode fs.FileMode, check Check) (bool, error) {
	full := r.Path(p)
	if old, err := os.ReadFile(full); err == nil && bytes.Equal(old, data) {
		if st, err := os.Stat(full); err == nil && st.Mode().Perm() == mode.Perm() {
			return false, nil
		}
	}
	dir := filepath.Dir(full)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(full)+".tmp*")
	if err != nil {
		return false, fmt.Errorf("writing %s: %w", full, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Chmod(mode.Perm())
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return false, fmt.Errorf("writing %s: %w", full, werr)
	}
	if check != nil {
		if err := check(tmp.Name()); err != nil {
			return false, fmt.Errorf("checking new %s (the live file is unchanged): %w", full, err)
		}
	}
	if err := os.Rename(tmp.Name(), full); err != nil {
		return false, fmt.Errorf("replacing %s: %w", full, err)
	}
	return true, nil
}
