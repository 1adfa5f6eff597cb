package failover

import (
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	for _, tt := range []struct {
		line     string
		name     string
		state    Role
		relevant bool
		err      string
	}{
		{`INSTANCE "ETH1" MASTER 100`, "ETH1", Master, true, ""},
		{`INSTANCE "ETH0" BACKUP 100`, "ETH0", Backup, true, ""},
		{`INSTANCE ETH0 FAULT`, "ETH0", Fault, true, ""},
		{`INSTANCE "ETH0" STOP 0`, "ETH0", Fault, true, ""},
		{`INSTANCE "ETH0" DELETED 0`, "ETH0", Unknown, true, ""},
		{`GROUP "VRouter" MASTER 0`, "", "", false, ""},
		{`VS "10.0.0.1:80" UP`, "", "", false, ""},
		{`RS "10.0.0.12:80" DOWN`, "", "", false, ""},
		{``, "", "", false, "malformed"},
		{`INSTANCE`, "", "", false, "malformed"},
		{`INSTANCE "ETH0"`, "", "", false, "malformed"},
		{`INSTANCE "ETH0" WEIRD 100`, "", "", false, "unknown state"},
		{`instance "ETH0" MASTER 100`, "", "", false, "unknown type"},
		{`INSTANCE "" MASTER 100`, "", "", false, "bad instance name"},
		{`INSTANCE "ETH0" MASTER 100 extra`, "", "", false, "malformed"},
		{"\x00\xff garbage", "", "", false, "malformed"},
	} {
		ev, relevant, err := ParseLine(tt.line)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.line, err, tt.err)
			}
			continue
		}
		if err != nil || relevant != tt.relevant || ev.Name != tt.name || ev.State != tt.state {
			t.Errorf("%q: %+v relevant=%v err=%v", tt.line, ev, relevant, err)
		}
	}
}

// step is one event of a sequence and the action it must produce.
type step struct {
	ev   Event
	want Action
	role Role
}

func line(s string) Event {
	ev, _, err := ParseLine(s)
	if err != nil {
		panic(err)
	}
	return ev
}

// obs builds an observation: keepalived's pid and "NAME=all|some|none".
func obs(pid int, vips ...string) Observation {
	o := Observation{KeepalivedPID: pid, VIPs: map[string]Presence{}}
	for _, v := range vips {
		name, p, _ := strings.Cut(v, "=")
		o.VIPs[name] = map[string]Presence{"all": AllVIPs, "some": SomeVIPs, "none": NoVIPs}[p]
	}
	return o
}

var twoInstances = []Instance{{"ETH0", true}, {"ETH1", true}}

func configured(ins []Instance, o Observation) Event {
	return Event{Kind: Configured, Instances: ins, Obs: o}
}
func observed(o Observation) Event { return Event{Kind: Observed, Obs: o} }
func polled(o Observation) Event   { return Event{Kind: Polled, Obs: o} }
func crashed(svc string) Event     { return Event{Kind: Crashed, Name: svc} }

func TestDecideSequences(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"boot: backup, then elected master, VIPs arrive, then loses the election", []step{
			{configured(twoInstances, obs(10, "ETH0=none", "ETH1=none")), Quiesce, Backup},
			{observed(obs(10, "ETH0=none", "ETH1=none")), Nothing, Backup},
			{line(`INSTANCE "ETH0" MASTER 100`), Nothing, Backup}, // ETH1 still backup until its line
			{line(`INSTANCE "ETH1" MASTER 100`), Wait, Master},
			{polled(obs(10, "ETH0=all", "ETH1=some")), Nothing, Master},
			{polled(obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
			{line(`GROUP "VRouter" MASTER 0`), Nothing, Master},   // (not relevant: never reaches Decide; harmless if it did)
			{line(`INSTANCE "ETH1" MASTER 100`), Nothing, Master}, // re-sent on reload: no restart
			{observed(obs(10, "ETH0=all", "ETH1=all")), Nothing, Master},
			{line(`INSTANCE "ETH0" BACKUP 100`), Quiesce, Backup},
			{line(`INSTANCE "ETH1" BACKUP 100`), Nothing, Backup}, // already stopped: once
			{line(`INSTANCE "ETH0" BACKUP 100`), Nothing, Backup},
		}},
		{"master with the VIPs already there when the line arrives", []step{
			{configured(twoInstances, obs(10, "ETH0=none", "ETH1=none")), Quiesce, Backup},
			{observed(obs(10, "ETH0=all", "ETH1=all")), Nothing, Backup}, // contradiction 1: the FIFO is faster than 3 looks
			{line(`INSTANCE "ETH0" MASTER 100`), Nothing, Backup},
			{line(`INSTANCE "ETH1" MASTER 100`), Wait, Master}, // the last look may predate the line: one fresh poll
			{polled(obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
		}},
		{"fault keeps nothing running", []step{
			{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
			{line(`INSTANCE "ETH1" FAULT 100`), Quiesce, Fault},
			{line(`INSTANCE "ETH1" BACKUP 100`), Nothing, Backup},
		}},
		{"one-failover restarted while master: learns it, leaves services running (Serve starts only stopped ones)", []step{
			{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
			{observed(obs(10, "ETH0=all", "ETH1=all")), Nothing, Master},
		}},
		{"keepalived killed while master, then respawned as backup", []step{
			{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
			{observed(obs(0, "ETH0=all", "ETH1=all")), Quiesce, Fault}, // stale VIPs do not count
			{observed(obs(0, "ETH0=all", "ETH1=all")), Nothing, Fault},
			{observed(obs(11, "ETH0=none", "ETH1=none")), Nothing, Backup}, // the new keepalived removed them
			{line(`INSTANCE "ETH0" BACKUP 100`), Nothing, Backup},
		}},
		{"keepalived killed on the master and respawned before the VIPs it left are gone: not master until it says so", []step{
			{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
			{observed(obs(0, "ETH0=all", "ETH1=all")), Quiesce, Fault},
			{observed(obs(11, "ETH0=all", "ETH1=all")), Nothing, Unknown}, // stale VIPs of the killed one
			{line(`INSTANCE "ETH0" BACKUP 100`), Nothing, Backup},
			{observed(obs(11, "ETH0=none", "ETH1=none")), Nothing, Backup},
		}},
		{"keepalived respawned and elected quickly: a later look learns master", []step{
			{configured(twoInstances, obs(10, "ETH0=none", "ETH1=none")), Quiesce, Backup},
			{observed(obs(0, "ETH0=none", "ETH1=none")), Nothing, Fault},
			{observed(obs(11, "ETH0=all", "ETH1=all")), Nothing, Unknown},
			{observed(obs(11, "ETH0=all", "ETH1=all")), Serve, Master},
		}},
		{"a MASTER line from a keepalived restarted since the last look counts (a later look does not void it)", []step{
			{configured(twoInstances, obs(10, "ETH0=none", "ETH1=none")), Quiesce, Backup},
			{Event{Kind: Line, Name: "ETH0", State: Master, Obs: obs(11)}, Nothing, Unknown},
			{Event{Kind: Line, Name: "ETH1", State: Master, Obs: obs(11)}, Wait, Master},
			{polled(obs(11, "ETH0=all", "ETH1=all")), Serve, Master},
			{observed(obs(11, "ETH0=all", "ETH1=all")), Nothing, Master},
		}},
		{"keepalived restarted between two looks: its old MASTER states are void", []step{
			{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
			{observed(obs(12, "ETH0=none", "ETH1=none")), Quiesce, Backup},
		}},
		{"a missed BACKUP line is corrected by the NICs after DriftLimit looks", []step{
			{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
			{observed(obs(10, "ETH0=none", "ETH1=none")), Nothing, Master},
			{observed(obs(10, "ETH0=none", "ETH1=none")), Nothing, Master},
			{observed(obs(10, "ETH0=none", "ETH1=none")), Quiesce, Backup},
		}},
		{"a look agreeing with the FIFO resets the drift", []step{
			{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
			{observed(obs(10, "ETH0=none", "ETH1=none")), Nothing, Master},
			{observed(obs(10, "ETH0=none", "ETH1=none")), Nothing, Master},
			{observed(obs(10, "ETH0=all", "ETH1=all")), Nothing, Master},
			{observed(obs(10, "ETH0=none", "ETH1=none")), Nothing, Master},
		}},
		{"MASTER line but the VIPs never come: after DriftLimit looks, backup", []step{
			{configured(twoInstances, obs(10, "ETH0=none", "ETH1=none")), Quiesce, Backup},
			{line(`INSTANCE "ETH0" MASTER 100`), Nothing, Backup},
			{line(`INSTANCE "ETH1" MASTER 100`), Wait, Master},
			{polled(obs(10, "ETH0=none", "ETH1=none")), Nothing, Master},
			{observed(obs(10, "ETH0=none", "ETH1=none")), Nothing, Master},
			{observed(obs(10, "ETH0=none", "ETH1=none")), Nothing, Master},
			{observed(obs(10, "ETH0=none", "ETH1=none")), Nothing, Backup}, // already quiesced: nothing to stop
		}},
		{"half-moved VIPs are unknown: nothing is done until it settles", []step{
			{configured(twoInstances, obs(10, "ETH0=all", "ETH1=some")), Nothing, Unknown},
			{observed(obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
		}},
		{"single router: no instance, serves at once whatever keepalived does", []step{
			{configured(nil, obs(0)), Serve, Master},
			{observed(obs(0)), Nothing, Master},
			{line(`INSTANCE "ETH0" BACKUP 100`), Nothing, Master}, // not ours: ignored
			{crashed("one-nat4"), Recover, Master},
		}},
		{"crash while master restarts; while backup does not", []step{
			{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
			{crashed("one-dns"), Recover, Master},
			{line(`INSTANCE "ETH0" BACKUP 100`), Quiesce, Backup},
			{crashed("one-dns"), Nothing, Backup},
		}},
		{"lines for instances of another configuration are ignored", []step{
			{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
			{line(`INSTANCE "ETH7" BACKUP 100`), Nothing, Master},
		}},
		{"lines before the context is loaded are kept, not acted on", []step{
			{line(`INSTANCE "ETH0" MASTER 100`), Nothing, Master}, // (no instances yet)
			{Event{Kind: Reopened, Obs: obs(10, "ETH0=all")}, Nothing, Master},
			{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
		}},
		{"reconfigured while serving reconciles; while backup does nothing", []step{
			{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
			{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), Reconcile, Master},
			{line(`INSTANCE "ETH0" BACKUP 100`), Quiesce, Backup},
			{configured(twoInstances, obs(10, "ETH0=none", "ETH1=none")), Nothing, Backup},
		}},
		{"reconfigured from VRRP to single: serves", []step{
			{configured(twoInstances, obs(10, "ETH0=none", "ETH1=none")), Quiesce, Backup},
			{configured(nil, obs(10)), Serve, Master},
		}},
		{"FIFO reopened (keepalived restarted it): state learned again", []step{
			{configured(twoInstances, obs(10, "ETH0=none", "ETH1=none")), Quiesce, Backup},
			{Event{Kind: Reopened, Obs: obs(10, "ETH0=all", "ETH1=all")}, Serve, Master},
		}},
		{"an instance without VIPs follows the FIFO only", []step{
			{configured([]Instance{{"ETH0", false}, {"ETH1", true}}, obs(10, "ETH1=all")), Serve, Master},
			{line(`INSTANCE "ETH0" FAULT 100`), Quiesce, Fault},
			{line(`INSTANCE "ETH0" MASTER 100`), Wait, Master}, // the VIPs may have gone meanwhile: waits for a poll
			{polled(obs(10, "ETH1=all")), Serve, Master},
		}},
		{"FIFO missing or silent from boot: the looks alone decide", []step{
			{configured(twoInstances, obs(10, "ETH0=none", "ETH1=none")), Quiesce, Backup},
			{observed(obs(10, "ETH0=all", "ETH1=all")), Nothing, Backup},
			{observed(obs(10, "ETH0=all", "ETH1=all")), Nothing, Backup},
			{observed(obs(10, "ETH0=all", "ETH1=all")), Serve, Master},
			{observed(obs(10, "ETH0=none", "ETH1=none")), Nothing, Master},
			{observed(obs(10, "ETH0=none", "ETH1=none")), Nothing, Master},
			{observed(obs(10, "ETH0=none", "ETH1=none")), Quiesce, Backup},
			{Event{Kind: Reopened, Obs: obs(10, "ETH0=none", "ETH1=none")}, Nothing, Backup}, // the FIFO appears
			{line(`INSTANCE "ETH0" MASTER 100`), Nothing, Backup},
		}},
		{"keepalived not running at boot: fault until it comes", []step{
			{configured(twoInstances, obs(0)), Quiesce, Fault},
			{observed(obs(20, "ETH0=none", "ETH1=none")), Nothing, Backup},
			{line(`INSTANCE "ETH0" MASTER 100`), Nothing, Backup},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s State
			for i, st := range tc.steps {
				tr := Decide(s, st.ev)
				if tr.Action != st.want || tr.Next.Role() != st.role {
					t.Fatalf("step %d (%s %s %s): action %q role %s, want %q %s (%s; %s)", i, st.ev.Kind, st.ev.Name, st.ev.State, tr.Action, tr.Next.Role(), st.want, st.role, tr.Reason, tr.Next)
				}
				s = tr.Next
			}
		})
	}
}

// The VIPs are released only when keepalived is gone (a killed keepalived
// leaves them behind), never on a plain backup or fault.
func TestDecideReleasesVIPs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []Event
		want  bool
	}{
		{"keepalived killed while master", []Event{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), observed(obs(0, "ETH0=all", "ETH1=all"))}, true},
		{"keepalived not running at boot", []Event{configured(twoInstances, obs(0))}, true},
		{"backup line while master", []Event{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), line(`INSTANCE "ETH0" BACKUP 100`)}, false},
		{"fault line while master", []Event{configured(twoInstances, obs(10, "ETH0=all", "ETH1=all")), line(`INSTANCE "ETH1" FAULT 100`)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s State
			var tr Transition
			for _, ev := range tc.steps {
				tr = Decide(s, ev)
				s = tr.Next
			}
			if tr.Action != Quiesce || tr.ReleaseVIPs != tc.want {
				t.Fatalf("action %q release %v, want quiesce %v (%s)", tr.Action, tr.ReleaseVIPs, tc.want, tr.Reason)
			}
		})
	}
}

// Decide is pure: the previous state is never modified.
func TestDecidePure(t *testing.T) {
	s := Decide(State{}, configured(twoInstances, obs(10, "ETH0=all", "ETH1=all"))).Next
	before := s.String()
	_ = Decide(s, line(`INSTANCE "ETH0" BACKUP 100`))
	if s.String() != before || s.Seen["ETH0"] != Master {
		t.Fatalf("Decide changed its input: %s", s)
	}
}
