package failover

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hypercx/vrouter/pkg/keepalived"
	"github.com/hypercx/vrouter/pkg/openrc"
)

// Defaults of the loop.
const (
	DefaultTick = time.Second
	// DefaultPoll is how often the VIPs are looked at while waiting for them.
	DefaultPoll = 10 * time.Millisecond
	// DefaultSettle delays acting on a new context (start, SIGHUP) so a
	// recontextualization's other configure steps run first; several
	// reloads in a row collapse into one.
	DefaultSettle = time.Second
	// DefaultCheckEvery: every this many ticks the enabled services of a
	// serving router are checked (crashed ones restarted).
	DefaultCheckEvery = 5
	// DefaultCommandTimeout bounds one rc-service call, so a hung script
	// can never wedge the loop.
	DefaultCommandTimeout = 60 * time.Second
)

// Scripts tells whether a service's OpenRC script can reload in place.
type Scripts interface {
	CanReload(service string) bool
}

// VIPReleaser removes VIPs from the NICs (netlink on the router).
type VIPReleaser interface {
	Release(vips []keepalived.VIP) (removed int, err error)
}

// Daemon is the one-failover loop.
type Daemon struct {
	Services openrc.Services
	Observer Observer
	Scripts  Scripts
	// Exits, when set, returns a channel closed when process pid exits
	// (nil when it cannot watch it): keepalived's death is then seen at
	// once instead of at the next tick, so a dead master stops serving
	// before a fast (VRRPv3) backup takes over.
	Exits func(pid int) <-chan struct{}
	// VIPs, when set, removes the VIPs a killed keepalived left behind.
	VIPs VIPReleaser
	// FIFO is keepalived's notify FIFO (a path on this machine).
	FIFO string
	Log  *slog.Logger
	// Reload receives a value for every SIGHUP.
	Reload <-chan struct{}
	// LoadSpec reads the context again after a reload.
	LoadSpec func() (Spec, error)
	// Timings (zero: the defaults).
	Tick, Poll, Settle time.Duration
	CheckEvery         int
	CommandTimeout     time.Duration
	// OnTransition, when set, sees every transition (tests, benchmarks).
	OnTransition func(Event, Transition)
	// Desired, when set, limits a reconcile to the running services whose
	// desired state changed or whose live state drifted (see refresh);
	// without it every running service that can reload is reloaded.
	Desired Desired

	mu      sync.Mutex
	ours    map[string]bool   // enabled services this daemon started successfully
	retry   map[string]bool   // enabled services whose start failed
	applied map[string]string // digest of what each running service last applied
	// stopped are the services this daemon stopped: starting them again
	// needs no status query first (one rc-service run less per service
	// between the VIPs arriving and the data plane being up).
	stopped map[string]bool
}

func (d *Daemon) defaults() {
	if d.Tick == 0 {
		d.Tick = DefaultTick
	}
	if d.Poll == 0 {
		d.Poll = DefaultPoll
	}
	if d.Settle == 0 {
		d.Settle = DefaultSettle
	}
	if d.CheckEvery == 0 {
		d.CheckEvery = DefaultCheckEvery
	}
	if d.CommandTimeout == 0 {
		d.CommandTimeout = DefaultCommandTimeout
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	d.ours, d.retry, d.applied, d.stopped = map[string]bool{}, map[string]bool{}, map[string]string{}, map[string]bool{}
}

func instancesOf(spec Spec) []Instance {
	var out []Instance
	for _, in := range spec.VRRP.Instances {
		out = append(out, Instance{Name: in.Name, HasVIPs: len(in.VIPs) > 0})
	}
	return out
}

// Run keeps the data-plane services in line with the router's role until
// ctx ends. It never stops on bad input: malformed FIFO lines are logged,
// a missing FIFO is created, a failed context reload keeps the last good
// context.
func (d *Daemon) Run(ctx context.Context, spec Spec) error {
	d.defaults()
	lines := make(chan string, 256)
	f := &fifo{path: d.FIFO, lines: lines}
	defer f.close()
	var state State
	watched, exited := 0, (<-chan struct{})(nil)
	// A transition is carried out in the background, so the loop keeps
	// reading keepalived's events while services start or a reconcile
	// asks every service what it would apply (which, against a slow
	// OneGate, takes seconds). The next transition cancels what is still
	// being asked and waits for the service commands under way: one
	// transition at a time, in order, and a BACKUP never waits for a
	// reconcile's questions.
	//
	// A router that stops being master does not wait for starts under
	// way either: their service commands are cancelled (rc-service and
	// everything the script runs in the foreground are killed) and the
	// stops follow at once, so a start script that hangs cannot keep a
	// backup serving beside the new master for up to a minute.
	var busy *background
	finish := func() {
		if busy != nil {
			busy.cancel()
			<-busy.done
			busy = nil
		}
	}
	defer finish()
	apply := func(ev Event) {
		tr := Decide(state, ev)
		state = tr.Next
		if d.Exits != nil && state.KeepalivedPID != watched {
			watched, exited = state.KeepalivedPID, nil
			if watched != 0 {
				exited = d.Exits(watched)
			}
		}
		if d.OnTransition != nil {
			d.OnTransition(ev, tr)
		}
		if tr.Action == Nothing {
			if ev.Kind == Line || ev.Kind == Configured || ev.Kind == Reopened {
				d.Log.Debug("no change", "reason", tr.Reason, "state", state.String())
			}
			return
		}
		d.Log.Info("transition", "action", string(tr.Action), "reason", tr.Reason, "state", state.String())
		if tr.ReleaseVIPs {
			// At once, before waiting for the service commands under
			// way (a start that hangs): the addresses a killed
			// keepalived left would answer on the network for the new
			// master's meanwhile.
			d.releaseVIPs(spec)
		}
		if tr.Action == Quiesce && busy != nil && busy.starts && !busy.idle() {
			d.Log.Warn("no longer master while services are starting: cancelling their starts", "action", string(busy.action))
			busy.cancelCommands()
		}
		finish()
		commands, cancelCommands := context.WithCancel(ctx)
		query, cancel := context.WithCancel(commands)
		busy = &background{
			action: tr.Action, starts: tr.Action == Serve || tr.Action == Reconcile || tr.Action == Recover,
			cancel: cancel, cancelCommands: cancelCommands, done: make(chan struct{}),
		}
		go func(b *background, spec Spec) {
			defer close(b.done)
			defer b.cancelCommands()
			d.execute(commands, query, spec, tr)
		}(busy, spec)
	}
	observe := func() Observation { return d.Observer.Observe(spec.VRRP.Instances) }
	fifoErr := ""
	ensureFIFO := func() {
		opened, err := f.ensure()
		switch {
		case err != nil && err.Error() != fifoErr:
			fifoErr = err.Error()
			d.Log.Warn("keepalived's FIFO is not usable; retrying every tick", "err", err)
		case err == nil && fifoErr != "":
			fifoErr = ""
		}
		if opened {
			d.Log.Info("FIFO opened", "path", d.FIFO)
			apply(Event{Kind: Reopened, Obs: observe()})
		}
	}

	ensureFIFO()
	d.Log.Info("started", "instances", len(spec.VRRP.Instances), "enabled", strings.Join(spec.Enabled(), ","), "settle", d.Settle)
	settle := time.NewTimer(d.Settle)
	defer settle.Stop()
	tick := time.NewTicker(d.Tick)
	defer tick.Stop()
	var poll *time.Ticker
	defer func() {
		if poll != nil {
			poll.Stop()
		}
	}()
	ticks := 0
	for {
		// Poll the VIPs only while waiting for them.
		var pollC <-chan time.Time
		switch {
		case state.Waiting && poll == nil:
			poll = time.NewTicker(d.Poll)
		case !state.Waiting && poll != nil:
			poll.Stop()
			poll = nil
		}
		if poll != nil {
			pollC = poll.C
		}
		select {
		case <-ctx.Done():
			d.Log.Info("stopping; services are left as they are", "state", state.String())
			return nil
		case line := <-lines:
			ev, relevant, err := ParseLine(line)
			switch {
			case err != nil:
				d.Log.Warn("ignoring FIFO line", "err", err)
			case !relevant:
				d.Log.Debug("FIFO line", "line", line)
			default:
				ev.Obs = Observation{KeepalivedPID: observe().KeepalivedPID}
				apply(ev)
			}
		case <-pollC:
			apply(Event{Kind: Polled, Obs: observe()})
		case <-exited:
			exited = nil
			d.Log.Info("keepalived exited", "pid", watched)
			apply(Event{Kind: Observed, Obs: observe()})
		case <-tick.C:
			ensureFIFO()
			apply(Event{Kind: Observed, Obs: observe()})
			ticks++
			if state.Serving && ticks%d.CheckEvery == 0 && busy.idle() {
				for _, svc := range d.down(ctx, spec) {
					apply(Event{Kind: Crashed, Name: svc})
				}
			}
		case <-d.Reload:
			if !settle.Stop() {
				select {
				case <-settle.C:
				default:
				}
			}
			settle.Reset(d.Settle)
		case <-settle.C:
			if state.Configured && d.LoadSpec != nil {
				next, err := d.LoadSpec()
				if err != nil {
					d.Log.Error("reloading the context failed; keeping the last good one", "err", err)
					continue
				}
				spec = next
				for _, w := range spec.Warnings() {
					d.Log.Warn(w)
				}
				d.Log.Info("context reloaded", "instances", len(spec.VRRP.Instances), "enabled", strings.Join(spec.Enabled(), ","))
			}
			apply(Event{Kind: Configured, Instances: instancesOf(spec), Obs: observe()})
		}
	}
}

// releaseVIPs removes the VIPs a killed keepalived left on the NICs.
func (d *Daemon) releaseVIPs(spec Spec) {
	if d.VIPs == nil {
		return
	}
	n, err := d.VIPs.Release(spec.VRRP.VIPs())
	if err != nil {
		d.Log.Error("removing the VIPs keepalived left behind", "err", err)
	}
	if n > 0 {
		d.Log.Info("keepalived is gone: removed the VIPs it left behind", "removed", n)
	}
}

// background is a transition being carried out.
type background struct {
	action Action
	// starts: the transition may start services (a Quiesce cancels it).
	starts bool
	// cancel ends the questions to the services; cancelCommands ends
	// the service commands too.
	cancel, cancelCommands context.CancelFunc
	done                   chan struct{}
}

// idle reports whether no transition is under way.
func (b *background) idle() bool {
	if b == nil {
		return true
	}
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// op is what is done to one service.
type op struct {
	svc, verb string
	err       error
	why       string
}

// execute carries out a transition: service commands under ctx, questions
// to the services (what they would apply, whether they drifted) under
// query, which the next transition cancels.
func (d *Daemon) execute(ctx, query context.Context, spec Spec, tr Transition) {
	start := time.Now()
	var ops []op
	switch tr.Action {
	case Wait:
		d.Log.Info("master: waiting for the VIPs before starting services")
		return
	case Serve, Reconcile:
		ops = d.serve(ctx, query, spec, tr.Action == Reconcile)
	case Quiesce:
		ops = d.quiesce(ctx, spec)
	case Recover:
		ops = d.recover(ctx, tr.Service)
	}
	counts := map[string]int{}
	failed := 0
	for _, o := range ops {
		if o.err != nil {
			failed++
			d.Log.Error("service command failed", "service", o.svc, "verb", o.verb, "err", o.err)
			continue
		}
		counts[o.verb]++
		if o.why != "" {
			d.Log.Info("service", "service", o.svc, "verb", o.verb, "why", o.why)
		} else {
			d.Log.Info("service", "service", o.svc, "verb", o.verb)
		}
	}
	d.Log.Info("applied", "action", string(tr.Action), "started", counts["start"]+counts["restart"], "reloaded", counts["reload"],
		"stopped", counts["stop"], "failed", failed, "took", time.Since(start).Round(time.Millisecond))
	// What each service applied is noted once every service is up: the
	// digests run the service binaries, which would compete for the CPU
	// with the starts between the VIPs arriving and the data plane being
	// up.
	parallel(opServices(ops), func(svc string) []op {
		for _, o := range ops {
			if o.svc == svc {
				d.track(query, o.svc, o.verb, o.err)
			}
		}
		return nil
	})
}

// opServices lists the services of ops, each once.
func opServices(ops []op) []string {
	var out []string
	for _, o := range ops {
		if !slices.Contains(out, o.svc) {
			out = append(out, o.svc)
		}
	}
	return out
}

// parallel runs f for every service at once: services are independent, and
// the time from the VIPs arriving to the data plane being up is the
// slowest script, not their sum.
func parallel(names []string, f func(string) []op) []op {
	results := make([][]op, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = f(n)
		}()
	}
	wg.Wait()
	var out []op
	for _, r := range results {
		out = append(out, r...)
	}
	return out
}

func (d *Daemon) run(ctx context.Context, svc, verb string) op {
	ctx, cancel := context.WithTimeout(ctx, d.CommandTimeout)
	defer cancel()
	err := d.Services.Run(ctx, svc, verb)
	d.mu.Lock()
	switch verb {
	case "start", "restart":
		d.ours[svc], d.retry[svc] = err == nil, err != nil
		d.stopped[svc] = false
	case "stop":
		d.stopped[svc] = err == nil
	}
	d.mu.Unlock()
	return op{svc: svc, verb: verb, err: err}
}

func (d *Daemon) status(ctx context.Context, svc string) openrc.State {
	ctx, cancel := context.WithTimeout(ctx, d.CommandTimeout)
	defer cancel()
	st, err := d.Services.Status(ctx, svc)
	if err != nil {
		d.Log.Warn("reading service status", "service", svc, "err", err)
	}
	return st
}

// serve starts the enabled services that are not running (running ones are
// left alone, or reloaded in place when the context changed) and stops the
// disabled ones. Services without an init script are skipped.
func (d *Daemon) serve(ctx, query context.Context, spec Spec, reconcile bool) []op {
	enabled := map[string]bool{}
	var names []string
	for _, s := range spec.Services {
		if !d.Services.Installed(s.Name) {
			d.Log.Debug("not installed; skipped", "service", s.Name)
			continue
		}
		enabled[s.Name] = s.Enabled
		names = append(names, s.Name)
	}
	return parallel(names, func(svc string) []op {
		d.mu.Lock()
		ours := d.stopped[svc]
		d.mu.Unlock()
		if enabled[svc] && ours {
			return []op{d.run(ctx, svc, "start")}
		}
		st := d.status(ctx, svc)
		switch {
		case !enabled[svc]:
			if st == openrc.Stopped || st == openrc.Missing {
				return nil
			}
			return []op{d.run(ctx, svc, "stop")}
		case st == openrc.Crashed:
			return []op{d.run(ctx, svc, "restart")}
		case st == openrc.Started || st == openrc.Starting:
			if reconcile {
				return d.refresh(ctx, query, svc)
			}
			return nil
		}
		return []op{d.run(ctx, svc, "start")}
	})
}

// quiesce stops every data-plane service that is not stopped.
func (d *Daemon) quiesce(ctx context.Context, spec Spec) []op {
	var names []string
	for _, s := range spec.Services {
		if d.Services.Installed(s.Name) {
			names = append(names, s.Name)
		}
	}
	d.mu.Lock()
	d.ours, d.retry = map[string]bool{}, map[string]bool{}
	d.mu.Unlock()
	return parallel(names, func(svc string) []op {
		if st := d.status(ctx, svc); st == openrc.Stopped || st == openrc.Missing {
			d.mu.Lock()
			d.stopped[svc] = true
			d.mu.Unlock()
			return nil
		}
		return []op{d.run(ctx, svc, "stop")}
	})
}

// recover restarts a crashed service, or starts one whose start failed.
func (d *Daemon) recover(ctx context.Context, svc string) []op {
	if d.status(ctx, svc) == openrc.Crashed {
		return []op{d.run(ctx, svc, "restart")}
	}
	return []op{d.run(ctx, svc, "start")}
}

// down lists the enabled services that died (crashed) or that this daemon
// failed to start. A service someone stopped by hand is left stopped (and
// said once): disabling it is the context's job.
func (d *Daemon) down(ctx context.Context, spec Spec) []string {
	var names []string
	for _, s := range spec.Services {
		if s.Enabled && d.Services.Installed(s.Name) {
			names = append(names, s.Name)
		}
	}
	var out []string
	var mu sync.Mutex
	parallel(names, func(svc string) []op {
		st := d.status(ctx, svc)
		d.mu.Lock()
		defer d.mu.Unlock()
		switch {
		// A start of ours that failed is retried, also when OpenRC
		// still says starting: no start of this daemon is under way
		// (down runs between transitions), so that is a start killed
		// at its deadline, and starting it again runs start() again.
		case st == openrc.Crashed, st != openrc.Started && d.retry[svc]:
			mu.Lock()
			out = append(out, svc)
			mu.Unlock()
		case st == openrc.Stopped && d.ours[svc]:
			d.ours[svc] = false
			d.Log.Warn("an enabled service was stopped by hand; leaving it stopped until the next transition or recontextualization", "service", svc)
		}
		return nil
	})
	slices.Sort(out)
	return out
}
