package haproxy

import (
	"bytes"
	"embed"
	"net/netip"
	"strconv"
	"text/template"

	"github.com/hypercx/vrouter/pkg/lb"
)

// Paths on the router.
const (
	ConfigDir   = "/etc/haproxy"
	MainFile    = ConfigDir + "/haproxy.cfg"
	ServersFile = ConfigDir + "/servers.cfg"
	// RunDir holds the admin socket and the saved server state (the
	// haproxy OpenRC script creates it).
	RunDir      = "/run/haproxy"
	AdminSocket = RunDir + "/admin.sock"
	// MasterSocket is the master CLI (haproxy -S, set by the OpenRC
	// script): one-haproxy reloads through it.
	MasterSocket = RunDir + "/master.sock"
	StateFile    = RunDir + "/server-state"
	// FileMode of the rendered files (as the original).
	FileMode = 0o640
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("").ParseFS(templateFS, "templates/*.tmpl"))

func execute(name string, view any) []byte {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, view); err != nil {
		// Fixed templates over typed views: a failure is a programming
		// error caught by the golden tests.
		panic("haproxy: rendering " + name + ": " + err.Error())
	}
	return b.Bytes()
}

// Desired is what one-haproxy writes.
type Desired struct {
	Main, Servers []byte
}

// MainConfig is haproxy.cfg: global settings and defaults, the same on
// every router.
func MainConfig() []byte {
	return execute("haproxy.cfg.tmpl", struct{ AdminSocket, StateFile string }{AdminSocket, StateFile})
}

// EmptyServers is servers.cfg without any LB, written at configure so
// haproxy always starts.
func EmptyServers() []byte { return execute("servers.cfg.tmpl", []frontendView(nil)) }

type frontendView struct {
	Name, Bind, Balance string
	Servers             []serverView
}

type serverView struct {
	Name, Addr, Inter string
	Weight, MaxConn   int
}

// Render builds the configuration for the LBs (the static ones merged with
// the dynamic servers). Every value in it was validated by the lb package
// (addresses, host names, numbers): nothing from the context or OneGate is
// written verbatim.
func Render(sp Spec, lbs []lb.LB) Desired {
	var fs []frontendView
	for _, l := range lbs {
		o := sp.options(l.Index)
		name := "lb" + strconv.Itoa(l.Index) + "_" + strconv.Itoa(int(l.Port))
		f := frontendView{Name: name, Bind: netip.AddrPortFrom(l.Addr, l.Port).String(), Balance: o.Balance}
		for _, s := range l.Servers {
			f.Servers = append(f.Servers, serverView{
				// As the original: lb<i>_<host>_<port> (host names and
				// addresses are valid in haproxy names).
				Name:    "lb" + strconv.Itoa(l.Index) + "_" + s.Host + "_" + strconv.Itoa(int(s.Port)),
				Addr:    s.Host + ":" + strconv.Itoa(int(s.Port)),
				Inter:   describeInterval(o.CheckInterval),
				Weight:  s.Weight,
				MaxConn: s.ULimit,
			})
		}
		fs = append(fs, f)
	}
	return Desired{Main: MainConfig(), Servers: execute("servers.cfg.tmpl", fs)}
}
