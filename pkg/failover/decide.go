package failover

import (
	"fmt"
	"maps"
	"strings"
)

// Role is what this router is in its VRRP group.
type Role string

const (
	Unknown Role = "UNKNOWN"
	Master  Role = "MASTER"
	Backup  Role = "BACKUP"
	Fault   Role = "FAULT"
)

// Presence is how many of an instance's VIPs are on the NICs.
type Presence int

const (
	NoVIPs Presence = iota
	SomeVIPs
	AllVIPs
)

func (p Presence) role() Role {
	switch p {
	case AllVIPs:
		return Master
	case NoVIPs:
		return Backup
	}
	return Unknown
}

// Observation is what the machine shows: keepalived's VRRP process and the
// VIPs of every instance that has some.
type Observation struct {
	// KeepalivedPID is keepalived's VRRP process, 0 when it is not running.
	KeepalivedPID int
	VIPs          map[string]Presence
}

// Instance is a VRRP instance as the daemon tracks it.
type Instance struct {
	Name string
	// HasVIPs: its state can be read from the NICs. An instance without
	// VIPs (a NIC with an address and no floating IP) is known only from
	// the FIFO; it follows the others through the sync group.
	HasVIPs bool
}

// Kind says where an event comes from.
type Kind int

const (
	// Configured: the daemon started or reloaded its context.
	Configured Kind = iota + 1
	// Reopened: the FIFO was (re)created or reopened; lines may have been
	// missed, so the state is learned again from the NICs.
	Reopened
	// Observed: the periodic look at keepalived and the VIPs.
	Observed
	// Polled: a quick look at the VIPs while waiting for them.
	Polled
	// Line: an INSTANCE line of keepalived's FIFO.
	Line
	// Crashed: an enabled data-plane service died (or failed to start).
	Crashed
)

func (k Kind) String() string {
	return map[Kind]string{Configured: "configured", Reopened: "reopened", Observed: "observed", Polled: "polled", Line: "line", Crashed: "crashed"}[k]
}

// Event is one input of Decide.
type Event struct {
	Kind Kind
	// Instances of the configuration (Configured).
	Instances []Instance
	// Obs (Configured, Reopened, Observed, Polled).
	Obs Observation
	// Obs.KeepalivedPID is also set on a Line: the keepalived that wrote
	// it, or 0 when unknown.
	// Name is the instance (Line) or the service (Crashed).
	Name string
	// State is the instance's state (Line); Unknown for an instance
	// keepalived deleted.
	State Role
}

// Action is what a transition asks the loop to do.
type Action string

const (
	Nothing Action = ""
	// Wait: master, but the VIPs are not all there yet.
	Wait Action = "wait"
	// Serve: start the enabled services (running ones are left alone) and
	// stop the disabled ones.
	Serve Action = "serve"
	// Reconcile: serving and the context changed: like Serve, and running
	// enabled services re-apply the context in place (reload).
	Reconcile Action = "reconcile"
	// Quiesce: stop every data-plane service.
	Quiesce Action = "quiesce"
	// Recover: restart the crashed service Transition.Service.
	Recover Action = "recover"
)

// DriftLimit is how many consecutive periodic observations may contradict
// what the FIFO said before the state is learned again from the NICs.
const DriftLimit = 3

// State is what the daemon knows.
type State struct {
	Configured bool
	Instances  []Instance
	// Seen is each instance's last known state (FIFO or NICs).
	Seen          map[string]Role
	KeepalivedPID int
	// VIPsUp: every VIP of every instance was present at the last look.
	VIPsUp bool
	// Serving: the enabled services were started; Quiesced: every service
	// was stopped; Waiting: master, waiting for the VIPs.
	Serving, Quiesced, Waiting bool
	// Drift counts consecutive observations contradicting Seen.
	Drift int
	// Looked: an observation was folded in before (keepalived's PID is
	// known, so a new PID means keepalived restarted).
	Looked bool
}

// Single reports whether the router runs without VRRP (no instance).
func (s State) Single() bool { return len(s.Instances) == 0 }

// Role derives the router's role. Without instances the router is alone and
// master. Without keepalived it is in fault. Otherwise any instance in
// fault or backup decides; the router is master when every instance whose
// state is known is master and every instance with VIPs is known.
func (s State) Role() Role {
	if s.Single() {
		return Master
	}
	if s.KeepalivedPID == 0 {
		return Fault
	}
	fault, backup, unknown, known := false, false, false, 0
	for _, in := range s.Instances {
		switch s.Seen[in.Name] {
		case Master:
			known++
		case Fault:
			fault = true
		case Backup:
			backup = true
		default:
			unknown = unknown || in.HasVIPs
		}
	}
	switch {
	case fault:
		return Fault
	case backup:
		return Backup
	case unknown || known == 0:
		return Unknown
	}
	return Master
}

func (s State) String() string {
	var seen []string
	for _, in := range s.Instances {
		r := s.Seen[in.Name]
		if r == "" {
			r = Unknown
		}
		seen = append(seen, in.Name+"="+string(r))
	}
	return fmt.Sprintf("role=%s instances=[%s] keepalived=%d vips_up=%v serving=%v", s.Role(), strings.Join(seen, " "), s.KeepalivedPID, s.VIPsUp, s.Serving)
}

// Transition is Decide's answer.
type Transition struct {
	Next    State
	Action  Action
	Service string // for Recover
	Reason  string
	// ReleaseVIPs (with Quiesce): keepalived is gone, and a killed
	// keepalived leaves its VIPs on the NICs, where they would keep
	// answering for addresses the new master now holds: remove them.
	ReleaseVIPs bool
}

// Decide is the failover decision table: the next state and what to do,
// given the state and one event. It is pure; the loop carries out the
// action.
//
//   - master (every instance master, or no instance at all): serve once the
//     VIPs are actually present, leaving running services alone;
//   - backup or fault (keepalived gone included): stop every data-plane
//     service, once;
//   - unknown (a transition half seen): keep doing what is being done;
//   - a context change while serving: reconcile (reload in place);
//   - a crashed enabled service while serving: restart it.
func Decide(prev State, ev Event) Transition {
	s := prev
	s.Seen = maps.Clone(prev.Seen)
	if s.Seen == nil {
		s.Seen = map[string]Role{}
	}
	reconfigured := false
	reason := ev.Kind.String()
	switch ev.Kind {
	case Configured:
		reconfigured = s.Configured
		s.Configured = true
		s.Instances = ev.Instances
		s.Seen = map[string]Role{}
		s.observe(ev.Obs, true)
		reason = "context loaded; state learned from the NICs"
	case Reopened:
		s.Seen = map[string]Role{}
		s.observe(ev.Obs, true)
		reason = "FIFO opened; state learned from the NICs"
	case Observed:
		if s.observe(ev.Obs, false) {
			reason = "learned from the NICs (keepalived restarted, or the NICs contradicted the FIFO for " + fmt.Sprint(DriftLimit) + " looks)"
		}
	case Polled:
		s.VIPsUp = allUp(s.Instances, ev.Obs)
		if s.VIPsUp {
			reason = "VIPs present"
		}
	case Line:
		if !s.has(ev.Name) {
			return Transition{Next: prev, Reason: fmt.Sprintf("ignored: no instance %q in this configuration", ev.Name)}
		}
		if pid := ev.Obs.KeepalivedPID; pid != 0 && pid != s.KeepalivedPID {
			// Written by a keepalived that started since the last look:
			// what the old one said is void, this line is not.
			s.Seen = map[string]Role{}
			s.KeepalivedPID, s.Looked = pid, true
		}
		if ev.State == Unknown {
			delete(s.Seen, ev.Name)
		} else {
			s.Seen[ev.Name] = ev.State
		}
		s.Drift = 0
		// The last look at the VIPs may predate this line: serving waits
		// for a fresh one.
		s.VIPsUp = false
		reason = fmt.Sprintf("keepalived: %s %s", ev.Name, ev.State)
	case Crashed:
		if s.Configured && s.Serving && s.Role() == Master {
			return Transition{Next: s, Action: Recover, Service: ev.Name, Reason: ev.Name + " died while master"}
		}
		return Transition{Next: s, Reason: ev.Name + " is down, but this router is not serving"}
	}
	if !s.Configured {
		return Transition{Next: s, Reason: reason + " (before the context is loaded)"}
	}
	return s.converge(reconfigured, reason)
}

func (s State) converge(reconfigured bool, reason string) Transition {
	switch s.Role() {
	case Master:
		if s.Serving {
			if reconfigured {
				return Transition{Next: s, Action: Reconcile, Reason: reason}
			}
			return Transition{Next: s, Reason: reason}
		}
		if s.Single() || s.VIPsUp {
			s.Serving, s.Quiesced, s.Waiting = true, false, false
			return Transition{Next: s, Action: Serve, Reason: reason}
		}
		if !s.Waiting {
			s.Waiting = true
			return Transition{Next: s, Action: Wait, Reason: reason}
		}
	case Backup, Fault:
		s.Waiting = false
		if s.Serving || !s.Quiesced {
			s.Serving, s.Quiesced = false, true
			return Transition{Next: s, Action: Quiesce, Reason: reason, ReleaseVIPs: s.KeepalivedPID == 0}
		}
	}
	return Transition{Next: s, Reason: reason}
}

func (s State) has(name string) bool {
	for _, in := range s.Instances {
		if in.Name == name {
			return true
		}
	}
	return false
}

// observe folds an observation into the state and reports whether it
// learned the state from it. learn forces that; otherwise it happens when
// keepalived (re)started or after DriftLimit contradicting looks; a look
// also fills in instances whose state is not known.
func (s *State) observe(o Observation, learn bool) bool {
	// A keepalived that started since the last look is never master yet
	// (every instance starts in BACKUP and waits for the master to go
	// silent); VIPs on the NICs are the ones a killed keepalived left
	// behind, which the new one is about to remove. Only its FIFO lines or
	// a later look can say master.
	fresh := s.Looked && o.KeepalivedPID != s.KeepalivedPID && o.KeepalivedPID != 0
	s.Looked = true
	if o.KeepalivedPID != s.KeepalivedPID {
		// keepalived started, stopped or restarted: what it said before is void.
		s.Seen = map[string]Role{}
		learn = true
	}
	s.KeepalivedPID = o.KeepalivedPID
	s.VIPsUp = allUp(s.Instances, o)
	if o.KeepalivedPID == 0 {
		s.Drift = 0
		return learn
	}
	contradiction := false
	for _, in := range s.Instances {
		if !in.HasVIPs {
			continue
		}
		got := o.VIPs[in.Name].role()
		seen, known := s.Seen[in.Name]
		switch {
		case got == Unknown, got == Master && fresh:
		case learn || !known:
			s.Seen[in.Name] = got
		case (seen == Master) != (got == Master):
			contradiction = true
		}
	}
	if !contradiction || learn {
		s.Drift = 0
		return learn
	}
	s.Drift++
	if s.Drift < DriftLimit {
		return false
	}
	s.Drift = 0
	s.Seen = map[string]Role{}
	s.observe(o, true)
	return true
}

// allUp reports whether every VIP of every instance is present.
func allUp(ins []Instance, o Observation) bool {
	n := 0
	for _, in := range ins {
		if !in.HasVIPs {
			continue
		}
		if o.VIPs[in.Name] != AllVIPs {
			return false
		}
		n++
	}
	return n > 0
}
