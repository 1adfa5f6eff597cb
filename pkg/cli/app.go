package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/netfilter"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/openrc"
	"github.com/hypercx/vrouter/pkg/sysctl"
	"github.com/hypercx/vrouter/services"
)

// LogDir is where the OpenRC scripts point --log-file.
const LogDir = "/var/log/one-appliance"

// ErrorDir keeps each service's last error for status.
const ErrorDir = "/run/one-appliance"

// Options are the process's standard streams and environment; tests replace
// them, and Wire replaces the system seams with fakes.
type Options struct {
	Stdout, Stderr io.Writer
	Environ        []string
	Wire           func(*Runtime)
}

// Main runs svc with the process's arguments and exits with its status.
func Main(svc Service) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := Run(ctx, svc, os.Args, Options{Stdout: os.Stdout, Stderr: os.Stderr, Environ: os.Environ()})
	stop()
	os.Exit(code)
}

// ExitCode maps an error to the exit status of the contract.
func ExitCode(err error) int {
	var ve *onecontext.VarError
	var ue *UsageError
	var de *DriftError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &de):
		return 3
	case errors.As(err, &ve), errors.As(err, &ue):
		return 2
	}
	return 1
}

var globalFlags = []ucli.Flag{
	&ucli.StringFlag{Name: "env-file", Usage: "context file `PATH` (default: /run/one-context/one_env under --root); the process environment overrides it"},
	&ucli.StringFlag{Name: "root", Value: "/", Usage: "`DIR` prefixed to every path read or written (files, /proc/sys)"},
	&ucli.StringFlag{Name: "log-file", Usage: "also append logs to `PATH` (the OpenRC scripts use /var/log/one-appliance/<service>.log)"},
	&ucli.BoolFlag{Name: "debug", Usage: "log at debug level (rule payloads, rendered files)"},
}

// Run runs svc with args (args[0] is the program name) and returns the exit status.
func Run(ctx context.Context, svc Service, args []string, o Options) int {
	info := svc.Info()
	var runErr error
	app := &ucli.App{
		Name:            info.Name,
		Usage:           info.Summary,
		Description:     description(info),
		Flags:           globalFlags,
		HideVersion:     true,
		HideHelpCommand: true,
		Writer:          o.Stdout,
		ErrWriter:       o.Stderr,
		ExitErrHandler:  func(*ucli.Context, error) {},
		OnUsageError: func(_ *ucli.Context, err error, _ bool) error {
			return &UsageError{Msg: err.Error()}
		},
		CommandNotFound: func(c *ucli.Context, cmd string) {
			runErr = &UsageError{Msg: fmt.Sprintf("unknown verb %q; see %s --help", cmd, info.Name)}
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return &UsageError{Msg: fmt.Sprintf("unknown verb %q; see %s --help", c.Args().First(), info.Name)}
			}
			_ = ucli.ShowAppHelp(c)
			return &UsageError{Msg: "a verb is required"}
		},
		Commands: commands(svc, info, o),
	}
	err := app.RunContext(ctx, args)
	if err == nil {
		err = runErr
	}
	if err != nil {
		fmt.Fprintf(o.Stderr, "%s: %v\n", info.Name, describeError(err))
	}
	return ExitCode(err)
}

func describeError(err error) error {
	var ve *onecontext.VarError
	if errors.As(err, &ve) {
		return fmt.Errorf("invalid context: %w", err)
	}
	return err
}

func description(info Info) string {
	var b strings.Builder
	b.WriteString(info.Description)
	if len(info.Vars) > 0 {
		b.WriteString("\n\nContext variables:\n")
		for _, v := range info.Vars {
			def := v.Default
			if def == "" {
				def = "unset"
			}
			fmt.Fprintf(&b, "   %s (default: %s)\n      %s\n", v.Name, def, v.Help)
		}
	}
	return strings.TrimSpace(b.String())
}

func commands(svc Service, info Info, o Options) []*ucli.Command {
	verb := func(name, usage, desc string, flags []ucli.Flag, fn func(context.Context, *ucli.Context, *Runtime) error) *ucli.Command {
		return &ucli.Command{
			Name: name, Usage: usage, Description: desc,
			Flags: append(flags, globalFlags...),
			OnUsageError: func(_ *ucli.Context, err error, _ bool) error {
				return &UsageError{Msg: err.Error()}
			},
			Action: func(c *ucli.Context) error {
				if c.NArg() > 0 {
					return &UsageError{Msg: fmt.Sprintf("%s takes no arguments, got %q", name, c.Args().Slice())}
				}
				rt, fileLog, closeLog, err := newRuntime(c, info, o)
				if err != nil {
					return err
				}
				defer closeLog()
				err = fn(c.Context, c, rt)
				if err != nil {
					// The terminal gets the error once, from Run; the log file keeps it too.
					fileLog.Error(name+" failed", "err", describeError(err).Error())
				}
				return err
			},
		}
	}
	var extra []*ucli.Command
	if v, ok := svc.(Verber); ok {
		for _, x := range v.Verbs() {
			extra = append(extra, ownVerb(x, info, o))
		}
	}
	startDesc := "Applies the context and returns."
	if info.Kind == Daemon {
		startDesc = "Runs in the foreground until SIGTERM or SIGINT, keeping the live state converged."
	}
	return append([]*ucli.Command{
		verb("install", "install the binary and its OpenRC scripts under --root (image build step)",
			"Copies this binary to <root>/usr/sbin/"+info.Name+" and the OpenRC scripts "+strings.Join(info.Scripts, ", ")+" to <root>/etc/init.d/.",
			nil, func(ctx context.Context, _ *ucli.Context, rt *Runtime) error { return install(ctx, svc, info, rt) }),
		verb("configure", "render static configuration from the context (run on every recontextualization)",
			"Validates the context and writes the service's static files; it does not start anything.",
			nil, func(ctx context.Context, _ *ucli.Context, rt *Runtime) error {
				err := svc.Configure(ctx, rt)
				rt.RecordError("configure", err)
				return err
			}),
		verb("start", "apply the context ("+string(info.Kind)+")", startDesc+" Invalid context exits 2 before anything is changed.",
			nil, func(ctx context.Context, _ *ucli.Context, rt *Runtime) error {
				if info.Kind == Daemon {
					// A daemon returns only when it ends: an earlier
					// failure is forgotten when it comes up, and a failure
					// to come up recorded when it returns.
					rt.RecordError("start", nil)
				}
				err := svc.Start(ctx, rt)
				rt.RecordError("start", err)
				return err
			}),
		verb("stop", "remove everything the service applied (idempotent)", "Safe to run any number of times, and on a system where nothing was applied.",
			nil, func(ctx context.Context, _ *ucli.Context, rt *Runtime) error {
				err := svc.Stop(ctx, rt)
				rt.RecordError("stop", err)
				return err
			}),
		verb("render", "print everything start would apply, without side effects",
			"Prints each artefact after a '### <target>' line: files by absolute path, 'iptables:<table>' (iptables-restore text), 'sysctl', 'addr:<dev>'. Needs no root.",
			[]ucli.Flag{&ucli.StringFlag{Name: "only", Usage: "print only the body of `TARGET`"}},
			func(ctx context.Context, c *ucli.Context, rt *Runtime) error {
				arts, err := svc.Render(ctx, rt)
				if err != nil {
					return err
				}
				return PrintArtefacts(rt.Stdout, arts, c.String("only"))
			}),
		verb("status", "compare the live state with the context (exit 3 on drift)",
			"Shows whether the service is enabled and applied, any drift and the last error.",
			[]ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print JSON"}},
			func(ctx context.Context, c *ucli.Context, rt *Runtime) error {
				rep, err := svc.Status(ctx, rt)
				if err != nil {
					// Still say what is known: the service, its OpenRC
					// state and its last errors.
					rep = Report{Error: describeError(err).Error()}
				}
				rep.Service = info.Name
				if rep.Drift == nil {
					rep.Drift = []string{}
				}
				rep.OpenRC = openRCState(ctx, rt, info.Name)
				if err == nil && rep.OpenRC == string(openrc.Stopped) && !info.EveryRouter &&
					openRCState(ctx, rt, FailoverService) == string(openrc.Started) {
					rep = stoppedReport(rep)
				}
				rep.LastErrors = rt.LastErrors(info.Name)
				printReport(rt.Stdout, rep, c.Bool("json"))
				if err != nil {
					return &reported{err}
				}
				if len(rep.Drift) > 0 {
					return &DriftError{Items: rep.Drift}
				}
				return nil
			}),
	}, extra...)
}

// ownVerb builds the command of a service's own verb.
func ownVerb(v Verb, info Info, o Options) *ucli.Command {
	var flags []ucli.Flag
	for _, b := range v.Bools {
		flags = append(flags, &ucli.BoolFlag{Name: b.Name, Usage: b.Help})
	}
	want := len(strings.Fields(v.Args))
	return &ucli.Command{
		Name: v.Name, Usage: v.Usage, Description: v.Description, ArgsUsage: v.Args,
		Flags: append(flags, globalFlags...),
		OnUsageError: func(_ *ucli.Context, err error, _ bool) error {
			return &UsageError{Msg: err.Error()}
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() != want {
				return &UsageError{Msg: fmt.Sprintf("usage: %s %s %s", info.Name, v.Name, v.Args)}
			}
			rt, fileLog, closeLog, err := newRuntime(c, info, o)
			if err != nil {
				return err
			}
			defer closeLog()
			set := map[string]bool{}
			for _, b := range v.Bools {
				set[b.Name] = c.Bool(b.Name)
			}
			err = v.Run(c.Context, rt, c.Args().Slice(), set)
			if err != nil {
				fileLog.Error(v.Name+" failed", "err", describeError(err).Error())
			}
			return err
		},
	}
}

// newRuntime loads the context and builds the real seams. It also returns a
// logger that writes to the log file only (discarding without --log-file).
func newRuntime(c *ucli.Context, info Info, o Options) (*Runtime, *slog.Logger, func(), error) {
	root := fsroot.Root(stringFlag(c, "root"))
	level := slog.LevelInfo
	if stringFlag(c, "debug") == "true" {
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	handlers := []slog.Handler{slog.NewTextHandler(o.Stderr, hopts)}
	closeLog := func() {}
	fileLog := slog.New(slog.DiscardHandler)
	if lf := stringFlag(c, "log-file"); lf != "" {
		path := root.Path(lf)
		_ = os.MkdirAll(filepath.Dir(path), 0o750)
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("opening log file: %w", err)
		}
		handlers = append(handlers, slog.NewTextHandler(f, hopts))
		fileLog = slog.New(handlers[1]).With("service", info.Name)
		closeLog = func() { f.Close() }
	}
	log := slog.New(slog.NewMultiHandler(handlers...)).With("service", info.Name)
	envFile := stringFlag(c, "env-file")
	if envFile == "" {
		envFile = root.Path(onecontext.DefaultEnvFile)
	}
	env, warnings, err := onecontext.Load(envFile, o.Environ)
	if err != nil {
		closeLog()
		return nil, nil, nil, err
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	nf := netfilter.System()
	nf.Log = log
	rt := &Runtime{
		Name: info.Name, Env: env, Root: root, Log: log, Stdout: o.Stdout, EnvFile: envFile,
		Netfilter: nf,
		Sysctl:    sysctl.Proc{Root: root},
		LoadEnv:   func() (onecontext.Env, []string, error) { return onecontext.Load(envFile, o.Environ) },
	}
	if o.Wire != nil {
		o.Wire(rt)
	}
	return rt, fileLog, closeLog, nil
}

// stringFlag returns a global flag given before or after the verb (the
// verb's own copy shadows the global one in urfave/cli lookups).
func stringFlag(c *ucli.Context, name string) string {
	for _, x := range c.Lineage() {
		if x.IsSet(name) {
			if name == "debug" {
				return fmt.Sprint(x.Bool(name))
			}
			return x.String(name)
		}
	}
	if name == "root" {
		return "/"
	}
	return ""
}

// PrintArtefacts writes artefacts in the render format, or only the body of
// one target.
func PrintArtefacts(w io.Writer, arts []Artefact, only string) error {
	if only != "" {
		var targets []string
		for _, a := range arts {
			if a.Target == only {
				_, err := w.Write(withNewline(a.Body))
				return err
			}
			targets = append(targets, a.Target)
		}
		sort.Strings(targets)
		return &UsageError{Msg: fmt.Sprintf("no artefact %q; this context renders: %s", only, strings.Join(targets, ", "))}
	}
	for _, a := range arts {
		if _, err := fmt.Fprintf(w, "### %s\n%s", a.Target, withNewline(a.Body)); err != nil {
			return err
		}
	}
	return nil
}

func withNewline(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(append([]byte{}, b...), '\n')
	}
	return b
}

func printReport(w io.Writer, r Report, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
		return
	}
	yn := map[bool]string{true: "yes", false: "no"}
	fmt.Fprintf(w, "service:  %s\n", r.Service)
	if r.OpenRC != "" {
		fmt.Fprintf(w, "openrc:   %s\n", r.OpenRC)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "status:   cannot compare with the context: %s\n", r.Error)
	} else {
		fmt.Fprintf(w, "enabled:  %s\napplied:  %s\n", yn[r.Enabled], yn[r.Applied])
		if len(r.Drift) == 0 {
			fmt.Fprintln(w, "drift:    none")
		} else {
			fmt.Fprintln(w, "drift:")
			for _, d := range r.Drift {
				fmt.Fprintf(w, "  - %s\n", d)
			}
		}
		if len(r.Details) > 0 {
			fmt.Fprintln(w, "details:")
			for _, d := range r.Details {
				fmt.Fprintf(w, "  %s\n", d)
			}
		}
	}
	if len(r.LastErrors) == 0 {
		fmt.Fprintln(w, "last error: none")
		return
	}
	fmt.Fprintln(w, "last errors:")
	for _, e := range r.LastErrors {
		fmt.Fprintf(w, "  %s failed at %s: %s\n", e.Verb, e.At.Format(time.RFC3339), indentMore(e.Message))
	}
}

// indentMore keeps a multi-line message inside its list item.
func indentMore(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ")
}

// reported is an error whose message status already printed in its report;
// Run prints it once more on stderr, which keeps scripts that only read
// stderr informed.
type reported struct{ err error }

func (r *reported) Error() string { return r.err.Error() }
func (r *reported) Unwrap() error { return r.err }

// FailoverService is the daemon that starts and stops the data-plane
// services on the VRRP master.
const FailoverService = "one-failover"

// stoppedReport judges a service OpenRC has stopped, while one-failover
// runs, against nothing applied: on a backup router one-failover keeps every
// data-plane service stopped, and a healthy backup has no drift. Whether the
// service should run here is one-failover's status to say. (Without
// one-failover, a stopped service the context enables is drift.)
func stoppedReport(rep Report) Report {
	if rep.Enabled {
		rep.Details = append(rep.Details, "stopped in OpenRC: compared with nothing applied (one-failover starts it on the VRRP master only)")
	}
	rep.Drift = []string{}
	if rep.Applied {
		rep.Drift = append(rep.Drift, "stopped in OpenRC, but what it applies is still in place")
	}
	return rep
}

// openRCState is the service's OpenRC state on the real machine (not under
// --root: rc-service knows nothing of another tree).
func openRCState(ctx context.Context, rt *Runtime, name string) string {
	if rt.Root != "" && rt.Root != "/" {
		return ""
	}
	rc := openrc.RC{Root: rt.Root}
	if !rc.Installed(name) {
		return ""
	}
	if _, err := exec.LookPath("rc-service"); err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, _ := rc.Status(ctx, name)
	return string(st)
}

// install copies the running binary and the service's OpenRC scripts under
// the root.
func install(ctx context.Context, svc Service, info Info, rt *Runtime) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding own binary: %w", err)
	}
	dst := rt.Root.Path("/usr/sbin/" + info.Name)
	if same, _ := sameFile(self, dst); !same {
		data, err := os.ReadFile(self)
		if err != nil {
			return fmt.Errorf("reading own binary: %w", err)
		}
		if _, err := rt.Root.WriteFile("/usr/sbin/"+info.Name, data, 0o755); err != nil {
			return err
		}
	}
	for _, s := range info.Scripts {
		body, err := services.Script(s)
		if err != nil {
			return err
		}
		if _, err := rt.Root.WriteFile("/etc/init.d/"+s, body, 0o755); err != nil {
			return err
		}
	}
	if err := rt.Root.MkdirAll(LogDir, 0o750); err != nil {
		return err
	}
	if in, ok := svc.(Installer); ok {
		if err := in.Install(ctx, rt); err != nil {
			return err
		}
	}
	rt.Log.Info("installed", "binary", dst, "scripts", strings.Join(info.Scripts, ","))
	return nil
}

func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
