// Package image checks the file tree the appliance image gets: it builds the
// services the way the image build does (`make services`, then
// `alpine/rootfs.sh DIR BINDIR`) and checks every service installed with its
// init scripts and their counterparts, every init script accepted by
// openrc-run, the binaries static and stripped, the contextualization hooks
// executable, and no compiler anywhere. It needs neither root nor network.
package image

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/hypercx/vrouter/pkg/failover"
	"github.com/hypercx/vrouter/tests/lab"
)

// services are the nine binaries of the appliance, each with the init
// script of its own name and the counterpart daemons' scripts it installs.
var services = map[string][]string{
	"one-failover": {"keepalived", "conntrackd"},
	"one-router4":  nil,
	"one-nat4":     nil,
	"one-sdnat4":   nil,
	"one-lvs":      nil,
	"one-haproxy":  {"haproxy"},
	"one-dns":      {"unbound"},
	"one-dhcp4v2":  nil,
	"one-wg":       nil,
}

// hooks are the contextualization files of alpine/rootfs, all executable.
var hooks = []string{
	"/etc/one-appliance/service",
	"/etc/one-context.d/net-90-service-appliance",
	"/etc/one-context.d/net-99-report-ready",
	"/etc/one-context.d/loc-12-firewall",
	"/etc/one-context.d/loc-15-ip_forward",
	"/etc/one-context.d/loc-15-keepalived",
}

// alpineServices are the OpenRC services of the Alpine base and packages
// an init script may need.
var alpineServices = []string{"net", "localmount", "logger", "firewall", "sysctl", "iptables", "bootmisc", "modules"}

// compilers must be neither installed in the image nor in its tree.
var compilers = regexp.MustCompile(`^(gcc|g\+\+|cc|c\+\+|clang|go|gofmt|musl-dev|build-base|make|binutils|ld|as|tcc)$`)

// tree builds the image tree once.
func tree(t *testing.T) string {
	t.Helper()
	root := lab.RepoRoot()
	bindir := filepath.Join(t.TempDir(), "bin")
	build := exec.Command("make", "-s", "-C", root, "services", "BINDIR="+bindir, "GO="+filepath.Join(runtime.GOROOT(), "bin", "go"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make services: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command(filepath.Join(root, "alpine", "rootfs.sh"), dir, bindir).CombinedOutput(); err != nil {
		t.Fatalf("alpine/rootfs.sh: %v\n%s", err, out)
	}
	return dir
}

func TestImageTree(t *testing.T) {
	for _, tool := range []string{"make", "openrc-run", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (scripts/install-deps.sh installs it)", tool)
		}
	}
	dir := tree(t)

	t.Run("services", func(t *testing.T) {
		for svc, counterparts := range services {
			t.Run(svc, func(t *testing.T) {
				bin := filepath.Join(dir, "usr/sbin", svc)
				for _, p := range binaryProblems(bin) {
					t.Errorf("%s: %s", bin, p)
				}
				for _, s := range append([]string{svc}, counterparts...) {
					if _, err := os.Stat(filepath.Join(dir, "etc/init.d", s)); err != nil {
						t.Errorf("%s installs no init script %s: %v", svc, s, err)
					}
				}
			})
		}
		// Nothing else in /usr/sbin: the image gets exactly the nine.
		ents, _ := os.ReadDir(filepath.Join(dir, "usr/sbin"))
		for _, e := range ents {
			if _, ok := services[e.Name()]; !ok {
				t.Errorf("unexpected /usr/sbin/%s", e.Name())
			}
		}
	})

	t.Run("init scripts", func(t *testing.T) {
		scripts, _ := filepath.Glob(filepath.Join(dir, "etc/init.d/*"))
		if len(scripts) == 0 {
			t.Fatal("no init script")
		}
		var names []string
		for _, s := range scripts {
			names = append(names, filepath.Base(s))
		}
		for _, s := range scripts {
			t.Run(filepath.Base(s), func(t *testing.T) {
				for _, p := range initScriptProblems(s, names) {
					t.Error(p)
				}
			})
		}
	})

	t.Run("hooks", func(t *testing.T) {
		for _, h := range hooks {
			p := filepath.Join(dir, h)
			st, err := os.Stat(p)
			if err != nil {
				t.Errorf("%s: %v", h, err)
				continue
			}
			if st.Mode().Perm()&0o111 != 0o111 {
				t.Errorf("%s is not executable: %v", h, st.Mode())
			}
			data, _ := os.ReadFile(p)
			if !bytes.HasPrefix(data, []byte("#!/bin/sh\n")) {
				t.Errorf("%s does not start with #!/bin/sh", h)
			}
			// Alpine's /bin/sh is busybox ash.
			if out, err := exec.Command("busybox", "sh", "-n", p).CombinedOutput(); err != nil {
				t.Errorf("%s: busybox sh -n: %v %s", h, err, out)
			}
		}
		// The driver answers a wrong call with its usage, exit 1 (as the
		// original), before touching anything.
		for _, args := range [][]string{nil, {"frobnicate"}} {
			cmd := exec.Command(filepath.Join(dir, "/etc/one-appliance/service"), args...)
			cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "ONE_APPLIANCE_LOG_DIR=" + t.TempDir(), "ONE_APPLIANCE_STATUS=" + filepath.Join(t.TempDir(), "status")}
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "usage:") {
				t.Errorf("service %v: %v %s", args, err, out)
			}
		}
	})

	t.Run("service lists agree", func(t *testing.T) {
		// The driver configures every service, one-failover first; the
		// image installs every one; one-failover starts every data-plane
		// one. A service that plugs in is in all three.
		driver, _ := os.ReadFile(filepath.Join(dir, "/etc/one-appliance/service"))
		list := regexp.MustCompile(`(?m)^SERVICES="([^"]*)"`).FindSubmatch(driver)
		if list == nil {
			t.Fatal("no SERVICES= in the driver")
		}
		order := strings.Fields(string(list[1]))
		if len(order) == 0 || order[0] != "one-failover" {
			t.Errorf("the driver does not configure one-failover first: %v", order)
		}
		want := []string{"one-failover"}
		for _, e := range failover.Table() {
			want = append(want, e.Name)
		}
		rootfs, _ := os.ReadFile(filepath.Join(lab.RepoRoot(), "alpine/rootfs.sh"))
		installed := regexp.MustCompile(`for svc in ([^;]*);`).FindSubmatch(rootfs)
		if installed == nil {
			t.Fatal("no service loop in alpine/rootfs.sh")
		}
		var keys []string
		for k := range services {
			keys = append(keys, k)
		}
		for name, got := range map[string][]string{"driver": order, "rootfs.sh": strings.Fields(string(installed[1])), "one-failover's table": want, "this test": keys} {
			g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(order))
			if !slices.Equal(g, w) {
				t.Errorf("%s lists %v, the driver %v", name, g, w)
			}
		}
	})

	t.Run("no compiler", func(t *testing.T) {
		pk, err := os.ReadFile(filepath.Join(lab.RepoRoot(), "alpine/packages"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(pk))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") && compilers.MatchString(l) {
				t.Errorf("alpine/packages installs %s", l)
			}
		}
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && compilers.MatchString(d.Name()) {
				t.Errorf("a compiler in the tree: %s", p)
			}
			return nil
		})
	})

	t.Run("keepalived is neutral until contextualized", func(t *testing.T) {
		// keepalived is in the default runlevel: before the first
		// contextualization it must float no address.
		for _, p := range []string{"/etc/keepalived/keepalived.conf", "/etc/keepalived/conf.d/vrrp.conf"} {
			b, err := os.ReadFile(filepath.Join(dir, p))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte("vrrp_instance")) || bytes.Contains(b, []byte("virtual_ipaddress")) {
				t.Errorf("%s floats addresses:\n%s", p, b)
			}
		}
	})
}

// binaryProblems: an x86-64 ELF executable, statically linked (no
// interpreter, no shared libraries: it runs on musl), stripped (no symbol
// table, no DWARF).
func binaryProblems(path string) []string {
	var out []string
	st, err := os.Stat(path)
	if err != nil {
		return []string{"not installed: " + err.Error()}
	}
	if st.Mode().Perm() != 0o755 {
		out = append(out, fmt.Sprintf("mode %v, want 0755", st.Mode().Perm()))
	}
	f, err := elf.Open(path)
	if err != nil {
		return append(out, err.Error())
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		out = append(out, fmt.Sprintf("%v %v, want an x86-64 executable", f.Machine, f.Type))
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			out = append(out, fmt.Sprintf("dynamically linked (%v)", p.Type))
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		out = append(out, fmt.Sprintf("needs %v", libs))
	}
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			out = append(out, "not stripped: section "+s.Name)
		}
	}
	return out
}

var noDescription = regexp.MustCompile(`^\s*\* [a-z_]+: no description$`)

var dependLine = regexp.MustCompile(`^(need|use|want|after|before|provide|keyword|config)\b`)

// initScriptProblems runs the script through openrc-run the way OpenRC does
// (describe sources it in openrc-run.sh and lists its commands; depend
// runs its depend()), which reports a script that does not parse on stderr
// (openrc-run itself still exits 0), then checks what openrc-run would find
// at start: every extra command has its function, start has a command or
// a start(), every `need` is a service the image has.
func initScriptProblems(path string, tree []string) []string {
	var problems []string
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	data, err := os.ReadFile(path)
	if err != nil {
		return []string{err.Error()}
	}
	if !bytes.HasPrefix(data, []byte("#!/sbin/openrc-run\n")) {
		errorf("does not start with #!/sbin/openrc-run")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o755 {
		errorf("mode %v, want 0755", st.Mode().Perm())
	}
	if out, err := exec.Command("busybox", "sh", "-n", path).CombinedOutput(); err != nil {
		errorf("busybox sh -n (Alpine's /bin/sh): %v %s", err, out)
	}
	run := func(verb string) string {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command("openrc-run", path, verb)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			errorf("openrc-run %s: %v: %s", verb, err, stderr.String())
		}
		for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
			// describe lists commands without a description on stderr.
			if l != "" && !noDescription.MatchString(l) {
				errorf("openrc-run %s: %s", verb, l)
			}
		}
		return stdout.String()
	}
	if desc := run("describe"); !strings.Contains(desc, " * ") {
		errorf("openrc-run describe printed %q", desc)
	}
	for _, l := range strings.Split(strings.TrimSpace(run("depend")), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if !dependLine.MatchString(l) {
			errorf("depend printed %q", l)
			continue
		}
		if f[0] != "need" {
			continue
		}
		for _, dep := range f[1:] {
			if !slices.Contains(tree, dep) && !slices.Contains(alpineServices, dep) {
				errorf("needs %s, which the image does not have", dep)
			}
		}
	}
	// What openrc-run looks up when a command runs: sourced as it does,
	// with the variables it sets.
	check := `RC_SVCNAME=$(basename "$1"); RC_SERVICE="$1"; . "$1" >/dev/null 2>&1 || exit 9
for c in $extra_commands $extra_started_commands $extra_stopped_commands; do
	command -v "$c" >/dev/null 2>&1 || echo "extra command $c has no function"
done
if ! command -v start >/dev/null 2>&1 && [ -z "${command:-}" ]; then echo "neither start() nor command"; fi
if ! command -v depend >/dev/null 2>&1; then echo "no depend()"; fi
[ -n "${description:-}" ] || echo "no description"`
	out, err := exec.Command("busybox", "sh", "-c", check, "check", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		errorf("%v %s", err, out)
	}
	return problems
}

// The checks catch what they are for.
func TestChecksCatch(t *testing.T) {
	if _, err := exec.LookPath("openrc-run"); err != nil {
		t.Skip("needs openrc-run (scripts/install-deps.sh installs it)")
	}
	dir := t.TempDir()
	good := "#!/sbin/openrc-run\ndescription=\"x\"\nextra_started_commands=\"reload\"\ncommand=/bin/true\ndepend() {\n\tneed net\n}\nreload() { :; }\n"
	if p := initScriptProblems(write(t, dir, "good", good), nil); len(p) > 0 {
		t.Fatalf("a good script: %v", p)
	}
	for name, script := range map[string]string{
		"syntax":      strings.Replace(good, "reload() { :; }", "reload() { :;", 1),
		"no function": strings.Replace(good, "reload() { :; }", "", 1),
		"need":        strings.Replace(good, "need net", "need frobnicated", 1),
		"nothing":     strings.Replace(good, "command=/bin/true", "", 1),
		"shebang":     strings.Replace(good, "#!/sbin/openrc-run", "#!/bin/sh", 1),
		"undescribed": strings.Replace(good, `description="x"`, "", 1),
	} {
		if p := initScriptProblems(write(t, dir, name, script), nil); len(p) == 0 {
			t.Errorf("%s: no problem found", name)
		}
	}
	// A dynamically linked, unstripped binary.
	if p := binaryProblems("/bin/sh"); len(p) == 0 {
		t.Error("/bin/sh passes as static and stripped")
	}
}

func write(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
