// Package keepalived is the keepalived model of the Virtual Router: the VRRP
// instances parsed from the context (vrrp.go, vrrpspec.go), the files they
// are rendered to, a checked writer that lets `keepalived -t` judge the
// whole configuration before any file replaces a live one (files.go), and
// the start/reload/restart decision for the daemon (daemon.go).
//
// Layout on the router: /etc/keepalived/keepalived.conf only includes
// /etc/keepalived/conf.d/*.conf; one-failover writes global.conf (the notify
// FIFO) and vrrp.conf, one-lvs writes lvs.conf. Each writer goes through
// Files.Write, so a file is checked together with the others it will live
// with, and calls Reload or Converge afterwards.
package keepalived

import (
	"bytes"
	"embed"
	"text/template"
)

// Paths on the router.
const (
	MainFile   = "/etc/keepalived/keepalived.conf"
	ConfDir    = "/etc/keepalived/conf.d"
	GlobalFile = ConfDir + "/global.conf"
	VRRPFile   = ConfDir + "/vrrp.conf"
	LVSFile    = ConfDir + "/lvs.conf"
	// RunDir holds keepalived's pid files and the notify FIFO (the OpenRC
	// script creates it).
	RunDir = "/run/keepalived"
	// FIFO is where keepalived writes every VRRP transition
	// (`INSTANCE "ETH1" MASTER 100`); one-failover reads it.
	FIFO = RunDir + "/vrrp_notify_fifo.sock"
	// VRRPPidFile is the pid file of keepalived's VRRP process (-r).
	VRRPPidFile = RunDir + "/vrrp.pid"
	// Service is keepalived's OpenRC service.
	Service = "keepalived"
	// FileMode of the rendered files: they hold the VRRP password.
	FileMode = 0o640
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("").ParseFS(templateFS, "templates/*.tmpl"))

func execute(name string, view any) []byte {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, view); err != nil {
		// The templates are fixed and their views typed: a failure is a
		// programming error caught by the golden tests.
		panic("keepalived: rendering " + name + ": " + err.Error())
	}
	return b.Bytes()
}

// MainConfig is keepalived.conf: it only includes conf.d, so every writer
// owns its own file there.
func MainConfig() []byte { return execute("keepalived.conf.tmpl", ConfDir) }

// GlobalConfig is conf.d/global.conf: the notify FIFO one-failover reads,
// with the current states rewritten into it on every reload.
func GlobalConfig() []byte { return execute("global.conf.tmpl", FIFO) }
