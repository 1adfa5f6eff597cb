// Package cli is the command line shared by every one-* binary: the verbs
// (install, configure, start, stop, render, status), the flags (--env-file,
// --root, --log-file, --debug), the render format (`### <target>` headers)
// and the exit codes (0 ok, 1 runtime failure, 2 invalid context or usage,
// 3 drift found by status). A binary's main builds its Service and calls Main.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/netfilter"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/sysctl"
)

// Kind is oneshot (start applies and returns) or daemon (start runs in the
// foreground until stopped).
type Kind string

const (
	Oneshot Kind = "oneshot"
	Daemon  Kind = "daemon"
)

// Var documents a context variable a service reads (for --help and README).
type Var struct {
	Name, Default, Help string
}

// Info describes a service.
type Info struct {
	Name    string // "one-nat4"
	Summary string // one line
	// Description is the longer text of --help.
	Description string
	Kind        Kind
	// Scripts are the OpenRC scripts (names in the services package) that
	// `install` writes to /etc/init.d.
	Scripts []string
	Vars    []Var
	// EveryRouter: the service runs on every router, backups included
	// (one-failover itself). The others are data-plane services that
	// one-failover runs on the VRRP master only, so status judges one that
	// OpenRC has stopped against nothing applied.
	EveryRouter bool
}

// Artefact is one thing render prints: a file by its absolute path,
// "iptables:<table>", "sysctl", "addr:<dev>".
type Artefact struct {
	Target string
	Body   []byte
}

// Report is what status finds. Services fill Enabled, Applied, Drift and
// Details; the status verb adds the rest.
type Report struct {
	Service string `json:"service"`
	// Enabled: the context enables the service.
	Enabled bool `json:"enabled"`
	// Applied: what the service applies is in place (chains, sysctls, a
	// running daemon).
	Applied bool `json:"applied"`
	// Drift lists every difference between the live state and the context
	// (empty, never absent, in JSON).
	Drift []string `json:"drift"`
	// Details are facts for a person ("forwarding: eth0 eth1").
	Details []string `json:"details,omitempty"`
	// OpenRC is the state of the service's OpenRC script on this machine
	// ("started", "stopped", ...; empty under --root or without OpenRC).
	OpenRC string `json:"openrc,omitempty"`
	// LastErrors holds, for every verb whose last run failed, that failure
	// (oldest first). A verb's record is cleared when it next succeeds.
	LastErrors []VerbError `json:"last_errors,omitempty"`
	// Error is why status could not compare (an invalid context, an
	// unreadable live state); the report then holds only what is known.
	Error string `json:"error,omitempty"`
}

// VerbError is the last failure of one verb (configure, start, stop, or a
// daemon's reload), kept under ErrorDir for status.
type VerbError struct {
	Verb    string    `json:"verb"`
	At      time.Time `json:"at"`
	Message string    `json:"message"`
}

// Service is one feature of the router. Every method gets the runtime with
// the context already loaded; errors that are *onecontext.VarError exit 2.
type Service interface {
	Info() Info
	// Configure renders static configuration on every (re)contextualization.
	Configure(ctx context.Context, rt *Runtime) error
	// Start applies the context (oneshot) or runs until ctx ends (daemon).
	Start(ctx context.Context, rt *Runtime) error
	// Stop tears down what the service applied; idempotent, and fine on a
	// system where nothing was applied.
	Stop(ctx context.Context, rt *Runtime) error
	// Render returns what Start would apply, without side effects.
	Render(ctx context.Context, rt *Runtime) ([]Artefact, error)
	// Status compares the live state with the desired one.
	Status(ctx context.Context, rt *Runtime) (Report, error)
}

// Installer is implemented by services that need more than their binary and
// init scripts at image build time.
type Installer interface {
	Install(ctx context.Context, rt *Runtime) error
}

// Verb is a verb of a service's own, beside the standard ones (one-wg's
// `peer N`). It gets the runtime like the others.
type Verb struct {
	Name, Usage, Description string
	// Args names the positional arguments, e.g. "N"; the verb takes
	// exactly that many (one per blank-separated word).
	Args string
	// Bools are the verb's boolean flags (Name, Help; Default unused).
	Bools []Var
	Run   func(ctx context.Context, rt *Runtime, args []string, flags map[string]bool) error
}

// Verber is implemented by services with verbs of their own.
type Verber interface {
	Verbs() []Verb
}

// Runtime is what a verb works with: the context, the filesystem root, the
// logger and the seams to the system. Tests build it with fakes.
type Runtime struct {
	// Name is the service ("one-nat4").
	Name   string
	Env    onecontext.Env
	Root   fsroot.Root
	Log    *slog.Logger
	Stdout io.Writer
	// Seams to the system.
	Netfilter *netfilter.Applier
	Sysctl    sysctl.Interface
	// LoadEnv reads the context again the way the verb did (the same
	// --env-file merged with the same process environment), for daemons
	// that reload on SIGHUP. Nil in tests that do not set it.
	LoadEnv func() (onecontext.Env, []string, error)
	// EnvFile is the context file the verb read (under the root).
	EnvFile string
}

// DriftError is returned by status when the live state differs (exit 3).
type DriftError struct{ Items []string }

func (e *DriftError) Error() string {
	return fmt.Sprintf("%d differences between live and desired state", len(e.Items))
}

// UsageError is a wrong command line (exit 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// NotImplemented is a service that exists as a binary but whose verbs all
// fail with a plain message (exit 1), install excepted: the image gets the
// binary, so the service plugs in once it is written.
type NotImplemented struct{ Desc Info }

func (n NotImplemented) Info() Info { return n.Desc }

func (n NotImplemented) err(verb string) error {
	return fmt.Errorf("%s %s: not implemented yet", n.Desc.Name, verb)
}

func (n NotImplemented) Configure(context.Context, *Runtime) error { return n.err("configure") }
func (n NotImplemented) Start(context.Context, *Runtime) error     { return n.err("start") }
func (n NotImplemented) Stop(context.Context, *Runtime) error      { return n.err("stop") }
func (n NotImplemented) Render(context.Context, *Runtime) ([]Artefact, error) {
	return nil, n.err("render")
}
func (n NotImplemented) Status(context.Context, *Runtime) (Report, error) {
	return Report{}, n.err("status")
}

// List joins names for status details, "none" when there are none.
func List(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, " ")
}
