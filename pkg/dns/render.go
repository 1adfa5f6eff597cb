package dns

import (
	"bufio"
	"bytes"
	"embed"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"text/template"
)

// ConfigFile is unbound's configuration, the file one-dns owns.
const ConfigFile = "/etc/unbound/unbound.conf"

// LogFile is unbound's log; unbound-checkconf wants its directory to exist.
const LogFile = "/var/log/unbound/unbound.log"

// RootHintsFiles are the distributions' root hints, in the order they are
// looked for: Debian's dns-root-data, then Alpine's dns-root-hints.
var RootHintsFiles = []string{"/usr/share/dns/root.hints", "/usr/share/dns-root-hints/named.root"}

//go:embed templates/unbound.conf.tmpl
var templates embed.FS

var confTemplate = template.Must(template.New("unbound.conf.tmpl").Funcs(template.FuncMap{
	"yesno": func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	},
}).ParseFS(templates, "templates/unbound.conf.tmpl"))

// Desired is the rendered state: unbound's configuration file.
type Desired struct {
	Config []byte
}

// view is what the template sees: every value already validated and turned
// into the text unbound wants.
type view struct {
	Listeners      []string
	UDP, TCP       bool
	TimeoutMs      int
	AllowedDefault bool
	Allowed        []netip.Prefix
	MaxCacheTTL    int
	RootHints      string
	QueryLocalhost bool
	Domain         string
	Records        []Record
	LogFile        string
	Forward        bool
	ForwardFirst   bool
	Upstream       string
	Forwarders     []string
}

// Render turns the spec into unbound.conf. Pure and deterministic.
func Render(s Spec) Desired {
	v := view{
		UDP: s.UDP, TCP: s.TCP, TimeoutMs: s.UpstreamTimeoutMs, MaxCacheTTL: s.MaxCacheTTL,
		AllowedDefault: s.AllowedDefault, Allowed: s.Allowed, Domain: s.Domain, Records: s.Records,
		LogFile: LogFile,
		Forward: s.Upstream != UpstreamRoots, ForwardFirst: s.ForwardFirst,
	}
	for _, l := range s.Listeners {
		v.Listeners = append(v.Listeners, addrPort(l.Addr, Port))
	}
	if s.Upstream == UpstreamRoots || s.ForwardFirst {
		v.RootHints = s.RootHints
	}
	for _, f := range s.Forwarders {
		v.Forwarders = append(v.Forwarders, addrPort(f, Port))
		if f.Addr().IsLoopback() {
			v.QueryLocalhost = true
		}
	}
	switch s.Upstream {
	case UpstreamNone:
		v.Upstream = "none (" + VarUseRootServers + "=NO and no nameserver in the context): only the local zone answers"
	default:
		v.Upstream = string(s.Upstream)
	}
	var b bytes.Buffer
	if err := confTemplate.Execute(&b, v); err != nil {
		// The template is fixed and the view typed: this is a programming error.
		panic(fmt.Sprintf("rendering unbound.conf: %v", err))
	}
	return Desired{Config: b.Bytes()}
}

// addrPort renders ADDR@PORT, or ADDR alone when the port is the default.
func addrPort(ap netip.AddrPort, def uint16) string {
	if ap.Port() == def {
		return ap.Addr().String()
	}
	return fmt.Sprintf("%s@%d", ap.Addr(), ap.Port())
}

// startOnly are the settings unbound reads only when it starts: it binds its
// sockets and drops privileges once, so a reload (SIGHUP) cannot apply a
// change to them and unbound has to be restarted.
var startOnly = []string{"interface:", "port:", "ip-freebind:", "do-ip4:", "do-ip6:", "do-udp:", "do-tcp:", "username:", "chroot:", "so-reuseport:"}

// NeedsRestart reports whether going from the configuration unbound runs
// with (old) to new needs a restart rather than a reload.
func NeedsRestart(old, new []byte) bool {
	return !slices.Equal(startSettings(old), startSettings(new))
}

func startSettings(conf []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(conf))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		for _, p := range startOnly {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return out
}
