// Package golden runs golden-file tests: every testdata/<case>.env context
// is rendered and compared with testdata/<TestName>/<case>.golden; run the
// tests with -update to rewrite the golden files after a deliberate change.
package golden

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Case is one context of testdata.
type Case struct {
	Name string
	Env  onecontext.Env
}

// Cases loads testdata/*.env (one_env format).
func Cases(t *testing.T) []Case {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.env"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.env cases: %v", err)
	}
	var out []Case
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		vars, skipped := onecontext.ParseEnvFile(data)
		if len(skipped) > 0 {
			t.Fatalf("%s: unterminated %v", f, skipped)
		}
		out = append(out, Case{Name: strings.TrimSuffix(filepath.Base(f), ".env"), Env: onecontext.New(vars)})
	}
	return out
}

// Check compares got with testdata/<TestName>/<name>.golden.
func Check(t *testing.T, name string, got []byte) {
	t.Helper()
	top := strings.SplitN(t.Name(), "/", 2)[0]
	path := filepath.Join("testdata", top, name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs (-want +got):\n%s", path, cmp.Diff(string(want), string(got)))
	}
}

// Render runs svc's render verb on env (or the error text, for contexts
// that are meant to be rejected) the way `render` prints it.
func Render(t *testing.T, svc cli.Service, env onecontext.Env) []byte {
	t.Helper()
	var out bytes.Buffer
	rt := &cli.Runtime{Env: env, Root: "/nonexistent-root", Stdout: &out, Log: discard()}
	arts, err := svc.Render(context.Background(), rt)
	if err != nil {
		return []byte("error (exit " + strconv.Itoa(cli.ExitCode(err)) + "): " + err.Error() + "\n")
	}
	if err := cli.PrintArtefacts(&out, arts, ""); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
