package onecontext

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseEnvFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		skipped []string
	}{
		{"one export", `export A="1"`, map[string]string{"A": "1"}, nil},
		{"one_env as written", "export TOKENTXT=\"tok\"\nexport VMID=\"7\"\nexport ETH0_IP=\"10.0.0.1\"\n",
			map[string]string{"TOKENTXT": "tok", "VMID": "7", "ETH0_IP": "10.0.0.1"}, nil},
		{"empty value", `export A=""`, map[string]string{"A": ""}, nil},
		{"escaped quote and backslash", `export A="a\"b\\c"`, map[string]string{"A": `a"b\c`}, nil},
		{"escaped dollar and backtick are literal", "export A=\"\\$(reboot) \\`id\\`\"", map[string]string{"A": "$(reboot) `id`"}, nil},
		{"unescaped dollar is never expanded", `export A="$(reboot);$HOME"`, map[string]string{"A": "$(reboot);$HOME"}, nil},
		{"other backslashes kept", `export A="a\nb\tc"`, map[string]string{"A": `a\nb\tc`}, nil},
		{"unescaped inner quotes: last quote closes", `export A="he said "hi""`, map[string]string{"A": `he said "hi"`}, nil},
		{"value spanning lines", "export A=\"line1\nline2\n\nline4\"\nexport B=\"2\"", map[string]string{"A": "line1\nline2\n\nline4", "B": "2"}, nil},
		{"backslash newline joins", "export A=\"x\\\ny\"", map[string]string{"A": "xy"}, nil},
		{"without export", `A="1"`, map[string]string{"A": "1"}, nil},
		{"single quoted literal", `export A='a\"$b'`, map[string]string{"A": `a\"$b`}, nil},
		{"unquoted", "export A=plain # comment\nexport B=x", map[string]string{"A": "plain", "B": "x"}, nil},
		{"unterminated is skipped, the next survives", "export A=\"oops\nexport B=\"ok\"", map[string]string{"B": "ok"}, []string{"A"}},
		{"garbage before first record ignored", "#!/bin/sh\n\nsomething\nexport A=\"1\"", map[string]string{"A": "1"}, nil},
		{"CRLF line ends", "export A=\"1\"\r\nexport B=\"2\"\r\n", map[string]string{"A": "1", "B": "2"}, nil},
		{"later definition wins", "export A=\"1\"\nexport A=\"2\"", map[string]string{"A": "2"}, nil},
		{"comment lines with quotes end the record before them", "# a \"quoted\" comment\nexport A=\"1\"\n# another \"x\nexport B=\"2\"\n\n# \"\n", map[string]string{"A": "1", "B": "2"}, nil},
		{"a comment inside an open value is data", "export A=\"x\n# y\nz\"", map[string]string{"A": "x\n# y\nz"}, nil},
		{"semicolons are data", `export ONEAPP_VNF_NAT4_INTERFACES_OUT="eth0;touch /tmp/x"`, map[string]string{"ONEAPP_VNF_NAT4_INTERFACES_OUT": "eth0;touch /tmp/x"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, skipped := ParseEnvFile([]byte(tt.in))
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("vars (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.skipped, skipped); d != "" {
				t.Errorf("skipped (-want +got):\n%s", d)
			}
		})
	}
}

func TestLoadEnvironmentWins(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "one_env")
	if err := os.WriteFile(p, []byte("export A=\"file\"\nexport B=\"file\"\nexport C=\"file\"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	e, warns, err := Load(p, []string{"B=env", "C=", "D=env"})
	if err != nil || len(warns) != 0 {
		t.Fatal(err, warns)
	}
	got := map[string]string{"A": e.Get("A"), "B": e.Get("B"), "C": e.Get("C"), "D": e.Get("D")}
	want := map[string]string{"A": "file", "B": "env", "C": "", "D": "env"}
	if d := cmp.Diff(want, got); d != "" {
		t.Error(d)
	}
	// A missing file is an empty context, not an error.
	e, _, err = Load(filepath.Join(dir, "missing"), []string{"X=1"})
	if err != nil || e.Get("X") != "1" {
		t.Fatal(err, e.Get("X"))
	}
}

func FuzzParseEnvFile(f *testing.F) {
	for _, s := range []string{
		`export A="1"`, "export A=\"a\nb\"\nexport B='x'", `export A="\"\\\$"`, "A=b c", "export A=\"", "\"\"\"", "export =\"x\"",
		"export A=\"x\\\n\"", "export A='", "\r\n\r\nexport A=\"\r\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, skipped := ParseEnvFile(data)
		for k := range vars {
			if !startLine.MatchString(k + "=") {
				t.Fatalf("invalid name %q", k)
			}
		}
		_ = skipped
		// The hand-written line splitter agrees with the grammar's regexp.
		for _, l := range strings.Split(string(data), "\n") {
			n, v, ok := assignment(l)
			m := startLine.FindStringSubmatch(l)
			if ok != (m != nil) || ok && (n != m[1] || v != m[2]) {
				t.Fatalf("line %q: assignment=%q,%q,%v regexp=%q", l, n, v, ok, m)
			}
		}
		// Parsing is deterministic.
		again, _ := ParseEnvFile(data)
		if d := cmp.Diff(vars, again); d != "" {
			t.Fatal(d)
		}
	})
}
