package lb

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/onegate"
)

// Backends resolves a configuration's dynamic servers: it fetches the
// objects from OneGate, parses and merges them into the static LBs, keeps the
// last good objects through an outage (an outage never empties what the
// router serves), and logs each skipped entry once.
type Backends struct {
	Family Family
	Log    *slog.Logger
	// Client is the OneGate client; nil when OneGate is off or not
	// configured (static servers only).
	Client OneGate

	objects   []Object
	fetched   bool
	discovery Discovery
	skips     []string
	lastErr   string
}

// Result is the LBs to serve and how they were obtained.
type Result struct {
	LBs []LB
	// Dynamic: OneGate answered (now or before); Stale: this time it did
	// not, and the last good answer was used.
	Dynamic, Stale bool
	Skips          []Skip
	// Err is why OneGate did not answer this time (nil when it did, or
	// when it is not asked).
	Err error
	// Objects are the OneGate objects the dynamic servers came from, and
	// Discovery where they were looked for (what a daemon keeps: Kept).
	Objects   []Object
	Discovery Discovery
}

// Source describes where the servers of r came from, for status.
func (r Result) Source(cfg Config) string {
	switch {
	case r.Dynamic && r.Err != nil:
		return "static and dynamic: OneGate does not answer now (" + r.Err.Error() + "); the dynamic servers it last reported are kept"
	case r.Dynamic:
		return "static and dynamic (" + string(cfg.Discovery.API) + ")"
	case cfg.OneGate && r.Err != nil:
		return "static only: OneGate does not answer (" + r.Err.Error() + ")"
	case cfg.OneGate && cfg.Gate == nil:
		return "static only (OneGate is not configured: no " + onegate.VarEndpoint + ")"
	case cfg.OneGate && cfg.Discovery.API == APINone:
		return "static only (nothing to discover from: " + cfg.Discovery.Why + ")"
	}
	return "static only"
}

// Resolve returns cfg's LBs with the dynamic servers OneGate reports now
// (or last reported). It never fails: without OneGate the LBs are static.
func (b *Backends) Resolve(ctx context.Context, cfg Config) Result {
	if !cfg.OneGate || b.Client == nil || cfg.Discovery.API == APINone {
		return Result{LBs: cfg.LBs}
	}
	objs, err := Fetch(ctx, b.Client, cfg.Discovery)
	res := Result{Discovery: cfg.Discovery}
	if err != nil {
		res.Err = err
	}
	switch {
	case err == nil:
		b.objects, b.fetched = objs, true
		if b.lastErr != "" {
			b.log().Info("OneGate answers again")
			b.lastErr = ""
		}
	case errors.Is(err, onegate.ErrStale) && objs != nil:
		b.objects, b.fetched, res.Stale = objs, true, true
		b.warnOnce("OneGate did not answer; using its last good answer", err)
	default:
		res.Stale = b.fetched
		if b.fetched {
			b.warnOnce("OneGate did not answer; keeping the dynamic backends it last reported", err)
		} else {
			b.warnOnce("OneGate did not answer; serving the static backends only", err)
		}
	}
	res.Dynamic = b.fetched
	res.Objects = b.objects
	cands, skips := b.Family.ParseDynamic(b.objects, cfg.Discovery.ID, cfg.Topology)
	lbs, mskips := Merge(cfg.LBs, cands)
	res.LBs, res.Skips = lbs, append(skips, mskips...)
	b.logSkips(res.Skips)
	return res
}

func (b *Backends) log() *slog.Logger {
	if b.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Log
}

func (b *Backends) warnOnce(msg string, err error) {
	if err.Error() == b.lastErr {
		return
	}
	b.lastErr = err.Error()
	b.log().Warn(msg, "err", err)
}

// logSkips warns about the skipped entries when their set changes, so a
// misconfigured backend is reported once, not on every refresh.
func (b *Backends) logSkips(skips []Skip) {
	var now []string
	for _, s := range skips {
		now = append(now, s.String())
	}
	slices.Sort(now)
	if slices.Equal(now, b.skips) {
		return
	}
	for _, s := range now {
		if !slices.Contains(b.skips, s) {
			b.log().Warn("dynamic backend skipped", "family", b.Family.Name, "entry", s)
		}
	}
	b.skips = now
}

// Loop is the refresh loop of a daemon (one-lvs, one-haproxy) whose parsed
// context is an S: it applies the LBs at once, then every refresh interval,
// and again with a new context on every reload signal.
type Loop[S any] struct {
	Family Family
	Log    *slog.Logger
	// Config returns the family's part of a parsed context.
	Config func(S) Config
	// Client returns the OneGate client for a configuration whose Gate is
	// set (nil: onegate.New).
	Client func(Config) (OneGate, error)
	// Apply converges the system (res is empty when the family is
	// disabled: tear down). It is called on every refresh and must change
	// nothing when nothing changed.
	Apply func(ctx context.Context, spec S, res Result) error
	// Load reads the context again (on a reload signal).
	Load   func() (S, error)
	Reload <-chan struct{}
	// KeepDir, when set, is where the default OneGate client keeps its last
	// good answers on disk (onegate.Config.KeepDir), so a daemon restarted
	// during a OneGate outage keeps its dynamic servers.
	KeepDir string
	// FirstFetch bounds the first OneGate fetch after a start or a reload,
	// so a slow OneGate never delays serving for long (default 2 s).
	FirstFetch time.Duration
	// OnApplied, when set, sees every apply (tests, benchmarks).
	OnApplied func(Result, error)
}

// Run loops until ctx ends. A failed apply is logged and retried at the
// next refresh; a context that fails to load keeps the last good one.
func (l *Loop[S]) Run(ctx context.Context, spec S) error {
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	first := l.FirstFetch
	if first == 0 {
		first = 2 * time.Second
	}
	var b *Backends
	setup := func(c Config) {
		prev := b
		b = &Backends{Family: l.Family, Log: log}
		// A new context keeps the last good OneGate answer (an outage at
		// that moment must not empty the LBs) unless the source changed.
		if prev != nil && prev.discovery == c.Discovery {
			b.objects, b.fetched = prev.objects, prev.fetched
		}
		b.discovery = c.Discovery
		if !c.Enabled || !c.OneGate {
			return
		}
		if c.Discovery.API == APINone {
			log.Warn("dynamic backends are enabled but there is nothing to discover them from", "why", c.Discovery.Why)
			return
		}
		if c.Gate == nil {
			log.Warn("dynamic backends are enabled but OneGate is not configured (ONEGATE_ENDPOINT): static backends only")
			return
		}
		newClient := l.Client
		if newClient == nil {
			newClient = func(c Config) (OneGate, error) {
				g := *c.Gate
				g.KeepDir = l.KeepDir
				return onegate.New(g, log)
			}
		}
		cl, err := newClient(c)
		switch {
		case err != nil:
			log.Error("OneGate client", "err", err)
		default:
			b.Client = cl
			log.Info("dynamic backends from OneGate", "api", string(c.Discovery.API), "why", c.Discovery.Why, "refresh", c.Refresh)
		}
	}
	lastErr := ""
	apply := func(timeout time.Duration) {
		var res Result
		if cfg := l.Config(spec); cfg.Enabled {
			fctx, cancel := context.WithTimeout(ctx, timeout)
			res = b.Resolve(fctx, cfg)
			cancel()
		}
		err := l.Apply(ctx, spec, res)
		if ctx.Err() != nil {
			return
		}
		if l.OnApplied != nil {
			l.OnApplied(res, err)
		}
		switch {
		case err != nil && err.Error() != lastErr:
			log.Error("applying failed; retrying at the next refresh", "err", err)
		case err == nil && lastErr != "":
			log.Info("applied again after a failure")
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
	}
	setup(l.Config(spec))
	apply(first)
	refresh := l.Config(spec).Refresh
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	tick := time.NewTicker(refresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			apply(refresh)
		case <-l.Reload:
			next, err := l.Load()
			if err != nil {
				log.Error("reloading the context failed; keeping the last good one", "err", err)
				continue
			}
			spec = next
			cfg := l.Config(spec)
			setup(cfg)
			log.Info("context reloaded", "enabled", cfg.Enabled, "lbs", len(cfg.LBs), "onegate", cfg.OneGate)
			apply(first)
			if cfg.Refresh > 0 && cfg.Refresh != refresh {
				refresh = cfg.Refresh
				tick.Reset(refresh)
			}
		}
	}
}

// Details are status lines: each LB, as label prints it, with its servers,
// then the dynamic entries skipped.
func (r Result) Details(label func(LB) string) []string {
	var out []string
	for _, l := range r.LBs {
		var ss []string
		for _, s := range l.Servers {
			ss = append(ss, s.HostPort())
		}
		out = append(out, "LB"+strconv.Itoa(l.Index)+" "+label(l)+": "+cli.List(ss))
	}
	for _, s := range r.Skips {
		out = append(out, "skipped: "+s.String())
	}
	return out
}

// Describe lists the LBs for a log line ("LB0 10.0.0.1:80 (2 servers)").
func Describe(lbs []LB) string {
	var out []string
	for _, l := range lbs {
		out = append(out, "LB"+strconv.Itoa(l.Index)+" "+l.Endpoint()+" ("+strconv.Itoa(len(l.Servers))+" servers)")
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// ResolveOnce returns cfg's LBs with the dynamic servers OneGate reports at
// this moment, for render and status: a short bounded query, and the static
// LBs alone when OneGate is off or not configured. When OneGate does not
// answer, the dynamic servers the running daemon keeps (kept, from its
// state file: ReadKept) are used, as the daemon does; without a daemon, the
// static LBs alone.
func ResolveOnce(ctx context.Context, f Family, cfg Config, log *slog.Logger, kept *Kept) Result {
	b := &Backends{Family: f, Log: log}
	if cfg.Enabled && cfg.OneGate && cfg.Gate != nil && cfg.Discovery.API != APINone {
		if c, err := onegate.New(cfg.Gate.Quick(), log); err == nil {
			defer c.Close()
			b.Client = c
		}
		if kept != nil && kept.Discovery == cfg.Discovery {
			b.objects, b.fetched = kept.Objects, true
		}
	}
	ctx, cancel := context.WithTimeout(ctx, onegate.QuickTotal)
	defer cancel()
	return b.Resolve(ctx, cfg)
}

// Kept is what a running daemon serves from OneGate, written to its state
// file whenever it changes: render and status, asked while OneGate does not
// answer, then judge the live state by the dynamic servers the daemon keeps
// instead of calling them drift.
type Kept struct {
	PID       int       `json:"pid"`
	Discovery Discovery `json:"discovery"`
	Objects   []Object  `json:"objects"`
	// OneGate is "ok", or why it did not answer the daemon's last look.
	OneGate string `json:"onegate"`
}

// keptOf is what a daemon that got res keeps (nil: nothing from OneGate).
func keptOf(res Result) *Kept {
	if !res.Dynamic {
		return nil
	}
	k := &Kept{PID: os.Getpid(), Discovery: res.Discovery, Objects: res.Objects, OneGate: "ok"}
	if res.Err != nil {
		k.OneGate = "not answering: " + res.Err.Error()
	}
	return k
}

// ReadKept reads the state file path under root, written by the daemon of
// service name; nil unless that daemon still runs.
func ReadKept(root fsroot.Root, path, name string) *Kept {
	b, err := root.ReadFile(path)
	if err != nil {
		return nil
	}
	var k Kept
	if json.Unmarshal(b, &k) != nil || !running(k.PID, name) {
		return nil
	}
	return &k
}

// running reports whether pid is this process or a live process of the
// binary name (its comm).
func running(pid int, name string) bool {
	if pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return err == nil && strings.TrimSpace(string(comm)) == name
}
