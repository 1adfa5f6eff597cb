package fsroot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	r := Root(t.TempDir())
	changed, err := r.WriteFile("/etc/x/y.conf", []byte("a\n"), 0o640)
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	st, _ := os.Stat(r.Path("/etc/x/y.conf"))
	if st.Mode().Perm() != 0o640 {
		t.Fatal(st.Mode())
	}
	if changed, _ := r.WriteFile("/etc/x/y.conf", []byte("a\n"), 0o640); changed {
		t.Fatal("rewrote identical file")
	}
	if changed, _ := r.WriteFile("/etc/x/y.conf", []byte("a\n"), 0o600); !changed {
		t.Fatal("mode change not written")
	}
	// A failing check leaves the live file and no temporary file behind.
	_, err = r.WriteChecked("/etc/x/y.conf", []byte("bad\n"), 0o600, func(string) error { return errors.New("rejected") })
	if err == nil {
		t.Fatal("check ignored")
	}
	if b, _ := r.ReadFile("/etc/x/y.conf"); string(b) != "a\n" {
		t.Fatalf("live file changed: %q", b)
	}
	ents, _ := os.ReadDir(filepath.Dir(r.Path("/etc/x/y.conf")))
	if len(ents) != 1 {
		t.Fatalf("leftovers: %v", ents)
	}
	if err := r.Remove("/etc/x/missing"); err != nil {
		t.Fatal(err)
	}
}
