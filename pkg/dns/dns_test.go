package dns

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/pkg/golden"
)

// Every rendered unbound.conf is compared with its golden file and, where
// unbound is installed, judged by unbound-checkconf.
func TestRender(t *testing.T) {
	for _, c := range golden.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			out := golden.Render(t, Service{}, c.Env)
			golden.Check(t, c.Name, out)
			bad := strings.HasPrefix(c.Name, "bad-")
			if bad != bytes.HasPrefix(out, []byte("error (exit 2)")) {
				t.Fatalf("bad-* cases must exit 2 and only they:\n%s", out)
			}
			if conf, ok := bytes.CutPrefix(out, []byte("### "+ConfigFile+"\n")); ok {
				checkConf(t, conf)
			}
		})
	}
}

// checkConf runs unbound-checkconf on conf when it is installed.
func checkConf(t *testing.T, conf []byte) {
	t.Helper()
	if _, err := exec.LookPath("unbound-checkconf"); err != nil {
		t.Log("unbound-checkconf not installed: configuration not checked by unbound")
		return
	}
	// unbound-checkconf wants the log directory to exist; this machine's
	// /var/log/unbound may not.
	dir := t.TempDir()
	conf = bytes.ReplaceAll(conf, []byte(`"`+LogFile+`"`), []byte(`"`+filepath.Join(dir, "unbound.log")+`"`))
	p := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(p, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckConf(context.Background(), p); err != nil {
		t.Fatalf("%v\n%s", err, conf)
	}
}
