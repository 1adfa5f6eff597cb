package keepalived

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/golden"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/openrc"
)

// realChecker is keepalived -t where keepalived is installed.
func realChecker(t *testing.T) Checker {
	if _, err := exec.LookPath("keepalived"); err != nil {
		return nil
	}
	return Exec{}
}

// render prints what configure would write for a context, or the error.
func render(cfg Config, err error) []byte {
	if err != nil {
		return []byte("error (exit " + strconv.Itoa(cli.ExitCode(err)) + "): " + err.Error() + "\n")
	}
	var b bytes.Buffer
	b.WriteString("### " + VRRPFile + "\n")
	b.Write(RenderVRRP(cfg))
	if len(cfg.LinksUp) > 0 {
		b.WriteString("### links up\n" + strings.Join(cfg.LinksUp, " ") + "\n")
	}
	if len(cfg.Warnings) > 0 {
		b.WriteString("### warnings\n" + strings.Join(cfg.Warnings, "\n") + "\n")
	}
	return b.Bytes()
}

// Every guide example and reference case, rendered; where keepalived is
// installed it must accept the whole configuration (it exits non-zero on
// warnings too, so this also catches a sync group of one, authentication
// with VRRPv3 and rounded intervals).
func TestRender(t *testing.T) {
	check := realChecker(t)
	for _, c := range golden.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			cfg, err := FromContext(c.Env)
			golden.Check(t, c.Name, render(cfg, err))
			if err != nil {
				if !strings.HasPrefix(c.Name, "bad-") || cli.ExitCode(err) != 2 {
					t.Fatalf("unexpected error (exit %d): %v", cli.ExitCode(err), err)
				}
				return
			}
			if strings.HasPrefix(c.Name, "bad-") {
				t.Fatal("a bad- case was accepted")
			}
			if check == nil {
				t.Log("keepalived not installed: rendered file not checked by keepalived -t")
				return
			}
			f := Files{Root: fsroot.Root(t.TempDir()), Checker: check}
			if _, err := f.Write(context.Background(), map[string][]byte{
				MainFile: MainConfig(), GlobalFile: GlobalConfig(), VRRPFile: RenderVRRP(cfg),
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFixedFiles(t *testing.T) {
	golden.Check(t, "keepalived.conf", MainConfig())
	golden.Check(t, "global.conf", GlobalConfig())
}

// The password is never printed, not even in the error naming it.
func TestPasswordNeverPrinted(t *testing.T) {
	for _, pw := range []string{"123456789", "a b", "x\ny", "a$b"} {
		_, err := FromContext(onecontext.FromPairs("ETH0_IP=10.0.0.2", "ETH0_VROUTER_IP=10.0.0.1", VarPassword+"="+pw))
		if cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), VarPassword) || strings.Contains(err.Error(), pw) {
			t.Errorf("%q: %v", pw, err)
		}
	}
}

func TestLayout(t *testing.T) {
	env := onecontext.FromPairs("VROUTER_KEEPALIVED_ID=5", "ETH0_IP=10.0.0.2", "ETH0_VROUTER_IP=10.0.0.1", "ETH1_IP=10.1.0.2", "ETH1_VROUTER_IP=10.1.0.1", "ONEAPP_VNF_KEEPALIVED_ETH1_VRID=6")
	layout := func(env onecontext.Env) string {
		t.Helper()
		cfg, err := FromContext(env)
		if err != nil {
			t.Fatal(err)
		}
		if got := LayoutOf(RenderVRRP(cfg)); got != cfg.Layout() {
			t.Fatalf("recorded layout %q, want %q", got, cfg.Layout())
		}
		return cfg.Layout()
	}
	base := layout(env)
	if base != "ETH0 eth0 vrid 5 v2, ETH1 eth1 vrid 6 v2" {
		t.Fatal(base)
	}
	// Reload-only changes keep the layout.
	for _, same := range []string{"ONEAPP_VNF_KEEPALIVED_PRIORITY=120", "ONEAPP_VROUTER_ETH0_VIP1=10.0.0.9", "ONEAPP_VNF_KEEPALIVED_INTERVAL=2",
		"ONEAPP_VNF_KEEPALIVED_PASSWORD=x", "ONEAPP_VNF_KEEPALIVED_NOPREEMPT=YES", "ONEAPP_VNF_KEEPALIVED_ETH0_UNICAST_PEERS=10.0.0.3", "ONEAPP_VNF_NAT4_ENABLED=YES"} {
		if got := layout(env.With(same)); got != base {
			t.Errorf("%s changed the layout: %s", same, got)
		}
	}
	for _, diff := range []string{"VROUTER_KEEPALIVED_ID=6", "ONEAPP_VNF_KEEPALIVED_ETH1_VRID=7", "ONEAPP_VNF_KEEPALIVED_INTERVAL=0.5",
		"ONEAPP_VNF_KEEPALIVED_ETH0_SKIP=YES", "ETH2_IP=10.2.0.2 ETH2_VROUTER_IP=10.2.0.1 ONEAPP_VNF_KEEPALIVED_ETH2_VRID=9",
		"ONEAPP_VNF_KEEPALIVED_INTERFACES=eth0"} {
		if got := layout(env.With(strings.Fields(diff)...)); got == base {
			t.Errorf("%s kept the layout", diff)
		}
	}
	if LayoutOf([]byte("vrrp_instance X {}\n")) != "" || LayoutOf(nil) != "" {
		t.Fatal("layout read from a file without one")
	}
}

func TestPlan(t *testing.T) {
	for _, tt := range []struct {
		st              openrc.State
		written, layout bool
		want            string
	}{
		{openrc.Stopped, false, false, "start"},
		{openrc.Stopped, true, true, "start"},
		{openrc.Inactive, false, false, "start"},
		{openrc.Unknown, false, false, "start"},
		{openrc.Crashed, false, false, "restart"},
		{openrc.Started, false, false, ""},
		{openrc.Started, true, false, "reload"},
		{openrc.Started, true, true, "restart"},
		{openrc.Starting, true, false, "reload"},
	} {
		if got := Plan(tt.st, tt.written, tt.layout); got != tt.want {
			t.Errorf("Plan(%s, written=%v, layout=%v) = %q, want %q", tt.st, tt.written, tt.layout, got, tt.want)
		}
	}
}

func TestConvergeAndReload(t *testing.T) {
	ctx := context.Background()
	f := openrc.NewFake(Service)
	for _, step := range []struct {
		written, layout bool
		want            string
	}{{true, true, "start"}, {false, false, ""}, {true, false, "reload"}, {true, true, "restart"}} {
		verb, err := Converge(ctx, f, step.written, step.layout)
		if err != nil || verb != step.want {
			t.Fatalf("%+v: %q %v", step, verb, err)
		}
	}
	if d := cmp.Diff([]string{"keepalived start", "keepalived reload", "keepalived restart"}, f.Calls); d != "" {
		t.Fatal(d)
	}
	f.Reset()
	_ = f.Run(ctx, Service, "stop")
	f.Reset()
	if err := Reload(ctx, f); err != nil || len(f.Calls) != 0 {
		t.Fatalf("reload of a stopped keepalived: %v %v", f.Calls, err)
	}
	if _, err := Converge(ctx, openrc.NewFake("one-nat4"), true, false); err == nil {
		t.Fatal("converge without a keepalived script succeeded")
	}
}

// recordingChecker accepts or rejects and keeps what it saw.
type recordingChecker struct {
	err   error
	calls int
	seen  map[string]string
}

func (r *recordingChecker) Check(_ context.Context, main string) error {
	r.calls++
	r.seen = map[string]string{}
	b, _ := os.ReadFile(main)
	r.seen["main"] = string(b)
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(main), "conf.d", "*.conf"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		r.seen[filepath.Base(f)] = string(b)
	}
	return r.err
}

func TestFilesWrite(t *testing.T) {
	ctx := context.Background()
	root := fsroot.Root(t.TempDir())
	chk := &recordingChecker{}
	f := Files{Root: root, Checker: chk}
	// Someone else's file in conf.d (one-lvs) is checked with ours.
	if _, err := root.WriteFile(LVSFile, []byte("# lvs\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	set := map[string][]byte{MainFile: MainConfig(), GlobalFile: GlobalConfig(), VRRPFile: []byte("# v1\n")}
	changed, err := f.Write(ctx, set)
	if err != nil || len(changed) != 3 {
		t.Fatalf("%v %v", changed, err)
	}
	if chk.seen["lvs.conf"] != "# lvs\n" || chk.seen["vrrp.conf"] != "# v1\n" || !strings.HasPrefix(chk.seen["main"], "include ") {
		t.Fatalf("checked set: %v", chk.seen)
	}
	if st, _ := os.Stat(root.Path(VRRPFile)); st.Mode().Perm() != FileMode {
		t.Fatalf("mode %v", st.Mode())
	}
	// Unchanged: no check, no write.
	if changed, err := f.Write(ctx, set); err != nil || changed != nil || chk.calls != 1 {
		t.Fatalf("unchanged: %v %v %d checks", changed, err, chk.calls)
	}
	// Rejected: the live files stay, the error names the real directory.
	chk.err = errors.New("bad line in " + "/tmp/x/conf.d/vrrp.conf")
	set[VRRPFile] = []byte("# v2\n")
	if _, err := f.Write(ctx, set); err == nil || !strings.Contains(err.Error(), "unchanged") {
		t.Fatalf("rejected write: %v", err)
	}
	if b, _ := root.ReadFile(VRRPFile); string(b) != "# v1\n" {
		t.Fatalf("a rejected file replaced the live one: %q", b)
	}
	if _, err := f.Write(ctx, map[string][]byte{"/etc/passwd": nil}); err == nil {
		t.Fatal("wrote outside keepalived's directory")
	}
}

// The real checker rejects what keepalived would silently change.
func TestRealCheckerRejects(t *testing.T) {
	check := realChecker(t)
	if check == nil {
		t.Skip("keepalived not installed (scripts/install-deps.sh installs it)")
	}
	for name, body := range map[string]string{
		"sync group of one": "vrrp_sync_group G {\n group {\n A\n }\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 1\n}\n",
		"vrid 300":          "vrrp_instance A {\n interface eth0\n virtual_router_id 300\n}\n",
		"rounded interval":  "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n advert_int 0.1\n}\n",
	} {
		f := Files{Root: fsroot.Root(t.TempDir()), Checker: check}
		_, err := f.Write(context.Background(), map[string][]byte{MainFile: MainConfig(), GlobalFile: GlobalConfig(), VRRPFile: []byte(body)})
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
