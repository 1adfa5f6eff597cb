package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/pkg/onecontext"
)

// echo is a test service: render prints X and Y from the context.
type echo struct{ drift []string }

func (echo) Info() Info {
	return Info{Name: "one-echo", Summary: "test", Kind: Oneshot, Scripts: []string{"one-nat4"}}
}
func (echo) Configure(context.Context, *Runtime) error { return nil }
func (echo) Start(_ context.Context, rt *Runtime) error {
	if _, err := rt.Env.Bool("X", false); err != nil {
		return err
	}
	if rt.Env.Get("FAIL") != "" {
		return errors.New("runtime failure")
	}
	return nil
}
func (echo) Stop(_ context.Context, rt *Runtime) error {
	if rt.Env.Get("FAIL") != "" {
		return errors.New("runtime failure")
	}
	return nil
}
func (echo) Render(_ context.Context, rt *Runtime) ([]Artefact, error) {
	return []Artefact{{Target: "/etc/x.conf", Body: []byte("x=" + rt.Env.Get("X"))}, {Target: "sysctl", Body: []byte("y = " + rt.Env.Get("Y") + "\n")}}, nil
}
func (e echo) Status(context.Context, *Runtime) (Report, error) {
	return Report{Enabled: true, Applied: true, Drift: e.drift}, nil
}

func run(t *testing.T, svc Service, environ []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), svc, append([]string{"one-echo"}, args...), Options{Stdout: &out, Stderr: &errb, Environ: environ})
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name    string
		svc     Service
		environ []string
		args    []string
		code    int
		stderr  string
	}{
		{"ok", echo{}, nil, []string{"start", "--root", dir}, 0, ""},
		{"invalid context", echo{}, []string{"X=perhaps"}, []string{"--root", dir, "start"}, 2, `invalid context: X="perhaps"`},
		{"runtime failure", echo{}, []string{"FAIL=1"}, []string{"start", "--root", dir}, 1, "runtime failure"},
		{"unknown verb", echo{}, nil, []string{"frobnicate"}, 2, "unknown verb"},
		{"no verb", echo{}, nil, nil, 2, "verb is required"},
		{"unknown flag", echo{}, nil, []string{"render", "--bogus"}, 2, "bogus"},
		{"stray argument", echo{}, nil, []string{"render", "extra"}, 2, "no arguments"},
		{"drift", echo{drift: []string{"x"}}, nil, []string{"status", "--root", dir}, 3, ""},
		{"no drift", echo{}, nil, []string{"status", "--root", dir}, 0, ""},
		{"not implemented", NotImplemented{Desc: Info{Name: "one-x"}}, nil, []string{"start", "--root", dir}, 1, "not implemented"},
		{"unknown render target", echo{}, nil, []string{"render", "--only", "nope"}, 2, "/etc/x.conf, sysctl"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, tt.svc, tt.environ, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tt.code, stderr, tt.stderr)
			}
		})
	}
}

func TestRenderFormat(t *testing.T) {
	code, out, _ := run(t, echo{}, []string{"X=1", "Y=2"}, "render")
	if code != 0 || out != "### /etc/x.conf\nx=1\n### sysctl\ny = 2\n" {
		t.Fatalf("%d %q", code, out)
	}
	_, out, _ = run(t, echo{}, []string{"Y=2"}, "render", "--only", "sysctl")
	if out != "y = 2\n" {
		t.Fatalf("%q", out)
	}
}

// The env file is read (default path under --root), the environment wins.
func TestEnvFileAndRoot(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, onecontext.DefaultEnvFile)
	_ = os.MkdirAll(filepath.Dir(p), 0o755)
	_ = os.WriteFile(p, []byte("export X=\"file\"\nexport Y=\"file\"\n"), 0o400)
	_, out, _ := run(t, echo{}, []string{"Y=env"}, "render", "--root", root)
	if out != "### /etc/x.conf\nx=file\n### sysctl\ny = env\n" {
		t.Fatalf("%q", out)
	}
	other := filepath.Join(t.TempDir(), "ctx")
	_ = os.WriteFile(other, []byte("export X=\"other\"\n"), 0o600)
	_, out, _ = run(t, echo{}, nil, "--env-file", other, "render", "--only", "/etc/x.conf")
	if out != "x=other\n" {
		t.Fatalf("%q", out)
	}
}

func TestInstall(t *testing.T) {
	root := t.TempDir()
	if code, _, stderr := run(t, echo{}, nil, "install", "--root", root); code != 0 {
		t.Fatal(stderr)
	}
	for p, mode := range map[string]os.FileMode{"/usr/sbin/one-echo": 0o755, "/etc/init.d/one-nat4": 0o755} {
		st, err := os.Stat(filepath.Join(root, p))
		if err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v", p, err, st)
		}
	}
	if st, err := os.Stat(filepath.Join(root, LogDir)); err != nil || !st.IsDir() {
		t.Fatal("log dir", err)
	}
}

func TestLastErrorInStatus(t *testing.T) {
	root := t.TempDir()
	// A failed start is kept, named with its verb.
	run(t, echo{}, []string{"X=perhaps"}, "start", "--root", root)
	_, out, _ := run(t, echo{}, nil, "status", "--root", root)
	if !strings.Contains(out, "last errors:\n  start failed at ") || !strings.Contains(out, `X="perhaps"`) {
		t.Fatalf("status does not show the last error:\n%s", out)
	}
	// Another verb's success does not hide it; a failed stop is kept too.
	run(t, echo{}, nil, "configure", "--root", root)
	run(t, echo{}, []string{"FAIL=1"}, "stop", "--root", root)
	code, out, _ := run(t, echo{}, nil, "status", "--json", "--root", root)
	var rep Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("%d %v\n%s", code, err, out)
	}
	var verbs []string
	for _, e := range rep.LastErrors {
		verbs = append(verbs, e.Verb)
		if e.At.IsZero() || e.Message == "" {
			t.Fatalf("incomplete record %+v", e)
		}
	}
	if strings.Join(verbs, " ") != "start stop" {
		t.Fatalf("last errors %v, want start then stop\n%s", verbs, out)
	}
	// The verb's next success forgets its failure.
	run(t, echo{}, nil, "start", "--root", root)
	run(t, echo{}, nil, "stop", "--root", root)
	_, out, _ = run(t, echo{}, nil, "status", "--json", "--root", root)
	if strings.Contains(out, "last_errors") || !strings.Contains(out, `"service": "one-echo"`) || !strings.Contains(out, `"drift": []`) {
		t.Fatalf("%s", out)
	}
	_, out, _ = run(t, echo{}, nil, "status", "--root", root)
	if !strings.Contains(out, "last error: none") {
		t.Fatalf("%s", out)
	}
}

// status with a context it cannot parse still reports what it knows, and
// exits 2.
func TestStatusInvalidContext(t *testing.T) {
	root := t.TempDir()
	run(t, strict{}, []string{"X=perhaps"}, "configure", "--root", root)
	code, out, stderr := run(t, strict{}, []string{"X=perhaps"}, "status", "--root", root)
	if code != 2 || !strings.Contains(stderr, `X="perhaps"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"service:  one-echo", "status:   cannot compare with the context: invalid context:", "configure failed at"} {
		if !strings.Contains(out, want) {
			t.Fatalf("missing %q in\n%s", want, out)
		}
	}
	code, out, _ = run(t, strict{}, []string{"X=perhaps"}, "status", "--json", "--root", root)
	var rep Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 2 || rep.Error == "" || len(rep.LastErrors) != 1 {
		t.Fatalf("%d %v %+v", code, err, rep)
	}
}

// A daemon that comes up forgets its earlier failure to start.
func TestDaemonStartClearsError(t *testing.T) {
	root := t.TempDir()
	up := make(chan struct{})
	d := daemon{up: up}
	run(t, d, []string{"X=perhaps"}, "start", "--root", root)
	if _, err := os.Stat(filepath.Join(root, ErrorDir, "one-echo.start.error")); err != nil {
		t.Fatal("failure not recorded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- Run(ctx, d, []string{"one-echo", "start", "--root", root}, Options{Stdout: io.Discard, Stderr: io.Discard})
	}()
	<-up
	if _, err := os.Stat(filepath.Join(root, ErrorDir, "one-echo.start.error")); err == nil {
		t.Fatal("a running daemon still shows its earlier failure")
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatal(code)
	}
}

// strict fails every verb on an invalid X.
type strict struct{ echo }

func (strict) Configure(_ context.Context, rt *Runtime) error {
	_, err := rt.Env.Bool("X", false)
	return err
}
func (strict) Status(_ context.Context, rt *Runtime) (Report, error) {
	_, err := rt.Env.Bool("X", false)
	return Report{}, err
}

// daemon runs until cancelled.
type daemon struct {
	echo
	up chan struct{}
}

func (daemon) Info() Info { return Info{Name: "one-echo", Kind: Daemon} }
func (d daemon) Start(ctx context.Context, rt *Runtime) error {
	if _, err := rt.Env.Bool("X", false); err != nil {
		return err
	}
	close(d.up)
	<-ctx.Done()
	return nil
}

func TestLogFile(t *testing.T) {
	root := t.TempDir()
	run(t, echo{}, []string{"X=perhaps"}, "start", "--root", root, "--log-file", "/var/log/one-appliance/one-echo.log")
	b, err := os.ReadFile(filepath.Join(root, "/var/log/one-appliance/one-echo.log"))
	if err != nil || !strings.Contains(string(b), "start failed") {
		t.Fatalf("%q %v", b, err)
	}
}

// A service OpenRC has stopped (a backup router) is compared with nothing
// applied.
func TestStoppedReport(t *testing.T) {
	rep := stoppedReport(Report{Enabled: true, Applied: false, Drift: []string{"chain missing"}})
	if len(rep.Drift) != 0 || len(rep.Details) != 1 {
		t.Fatalf("a stopped, unapplied service: %+v", rep)
	}
	rep = stoppedReport(Report{Enabled: true, Applied: true})
	if len(rep.Drift) != 1 {
		t.Fatalf("a stopped service whose state is in place: %+v", rep)
	}
}
