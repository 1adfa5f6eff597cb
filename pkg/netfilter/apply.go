package netfilter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Backend reads and writes whole tables: iptables-save and
// iptables-restore --noflush -w, or a fake.
type Backend interface {
	Save(ctx context.Context, table string) ([]byte, error)
	Restore(ctx context.Context, table string, payload []byte) error
}

// IPTables is the part of go-iptables used to manage jumps.
type IPTables interface {
	Insert(table, chain string, pos int, rulespec ...string) error
	Append(table, chain string, rulespec ...string) error
	Delete(table, chain string, rulespec ...string) error
}

// Applier converges owned chains.
type Applier struct {
	Backend Backend
	// IPT returns the jump manager teardown uses to remove the jumps into
	// the chains it deletes (go-iptables runs `iptables --version` when
	// created, so it is built only then).
	IPT func() (IPTables, error)
	Log *slog.Logger

	ipts IPTables // built once per Applier
}

// Result says what an Apply changed.
type Result struct {
	Changed bool
	Chains  int // chains rewritten
	Jumps   int // jumps added or removed
}

func (a *Applier) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

func (a *Applier) ipt() (IPTables, error) {
	if a.ipts != nil {
		return a.ipts, nil
	}
	if a.IPT == nil {
		return nil, errors.New("no iptables jump manager configured")
	}
	ipt, err := a.IPT()
	if err != nil {
		return nil, fmt.Errorf("starting go-iptables: %w", err)
	}
	a.ipts = ipt
	return ipt, nil
}

// Apply makes the owned chains and their jumps match rs. Chains whose live
// content already matches are not rewritten, so an unchanged ruleset makes no
// change at all (counters keep counting).
func (a *Applier) Apply(ctx context.Context, rs Ruleset) (Result, error) {
	var res Result
	if err := rs.Validate(); err != nil {
		return res, fmt.Errorf("validating %s rules: %w", rs.Owner, err)
	}
	states := map[string]State{}
	for _, table := range rs.tableNames() {
		st, err := a.save(ctx, table)
		if err != nil {
			return res, err
		}
		states[table] = st
	}
	for _, table := range rs.tableNames() {
		st := states[table]
		t := Table{Name: table}
		for _, x := range rs.Tables {
			if x.Name == table {
				t.Chains = append(t.Chains, x.Chains...)
			}
		}
		rewrite := map[string]bool{}
		var edits []string
		rules, patched := 0, 0
		for _, c := range t.Chains {
			live := st.Chains[c.Name]
			switch {
			case st.Has(c.Name) && slices.Equal(live, c.Rules):
			case !st.Has(c.Name):
				rewrite[c.Name] = true
				rules += len(c.Rules)
			default:
				if p, ok := Patch(c.Name, live, c.Rules); ok {
					edits = append(edits, p...)
					patched++
					rules += len(p)
				} else {
					rewrite[c.Name] = true
					rules += len(c.Rules)
				}
			}
		}
		// Jumps go in the same transaction, after the chains they jump to
		// are declared: chains and hooks appear together, and no extra
		// iptables process has to load a large table again.
		jumps := 0
		for _, j := range rs.Jumps {
			if j.Table == table {
				je := jumpEdits(rs.Owner, j, st)
				edits = append(edits, je...)
				jumps += len(je)
			}
		}
		if len(rewrite) == 0 && len(edits) == 0 {
			continue
		}
		payload := Payload(t, rewrite)
		if len(edits) > 0 {
			payload = append(payload[:len(payload)-len("COMMIT\n")], []byte(strings.Join(edits, "\n")+"\nCOMMIT\n")...)
		}
		a.log().Debug("restoring", "table", table, "payload", string(payload))
		if err := a.Backend.Restore(ctx, table, payload); err != nil {
			return res, fmt.Errorf("restoring %s table: %w", table, withLines(err, payload))
		}
		res.Changed = true
		res.Chains += len(rewrite) + patched
		res.Jumps += jumps
		if len(rewrite)+patched > 0 {
			a.log().Info("applied", "owner", rs.Owner, "table", table, "chains", len(rewrite)+patched, "patched", patched, "rules", rules)
		}
		for _, j := range rs.Jumps {
			if j.Table == table && len(jumpEdits(rs.Owner, j, st)) > 0 {
				a.log().Info("hooked", "table", table, "chain", j.From, "jump", j.To, "first", j.First)
			}
		}
	}
	if err := a.removeChains(ctx, rs.Owner, rs.Retired, states); err != nil {
		return res, err
	}
	if res.Jumps > 0 {
		res.Changed = true
	}
	return res, nil
}

// Patch returns the iptables-restore lines that turn the live rules of a
// chain into want in place: deletions of the rules that go, then
// insertions at their positions, so the rules that stay keep their
// counters and a large chain with a small change costs a few lines instead
// of a rewrite. ok is false when a rewrite is better or needed: rules
// repeated in a chain, rules that stay but change order, or edits
// touching more than half of the chain.
func Patch(chain string, live, want []string) (edits []string, ok bool) {
	inLive := make(map[string]bool, len(live))
	for _, r := range live {
		if inLive[r] {
			return nil, false
		}
		inLive[r] = true
	}
	inWant := make(map[string]bool, len(want))
	for _, r := range want {
		if inWant[r] {
			return nil, false
		}
		inWant[r] = true
	}
	var kept []string
	for _, r := range live {
		if inWant[r] {
			kept = append(kept, r)
		} else {
			edits = append(edits, "-D "+chain+" "+r)
		}
	}
	i := 0
	for _, r := range want {
		if inLive[r] {
			if i >= len(kept) || kept[i] != r {
				return nil, false
			}
			i++
		}
	}
	for j, r := range want {
		if !inLive[r] {
			// Every rule before j is in place: this one goes at j+1.
			edits = append(edits, "-I "+chain+" "+strconv.Itoa(j+1)+" "+r)
		}
	}
	if 2*len(edits) > len(want) {
		return nil, false
	}
	return edits, true
}

func (rs Ruleset) tableNames() []string {
	var names []string
	add := func(n string) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, t := range rs.Tables {
		add(t.Name)
	}
	for _, j := range rs.Jumps {
		add(j.Table)
	}
	for _, r := range rs.Retired {
		add(r.Table)
	}
	return names
}

func (a *Applier) save(ctx context.Context, table string) (State, error) {
	out, err := a.Backend.Save(ctx, table)
	if err != nil {
		return State{}, fmt.Errorf("reading %s table: %w", table, err)
	}
	return ParseSave(out), nil
}

// jumpEdits returns the restore lines that leave exactly one jump from
// j.From to j.To: added when missing (inserted first, or appended),
// duplicates removed, and a First jump that something else got in front
// of moved back to the head of its chain.
func jumpEdits(owner string, j Jump, st State) []string {
	var found []string
	for _, r := range st.Chains[j.From] {
		if Target(r) == j.To {
			found = append(found, r)
		}
	}
	spec := strings.Join(j.Spec(owner), " ")
	switch {
	case len(found) == 0 && j.First:
		return []string{"-I " + j.From + " 1 " + spec}
	case len(found) == 0:
		return []string{"-A " + j.From + " " + spec}
	}
	// A -D line deletes the first rule matching its text: the copies of
	// a jump are deleted by text, so the one left is not necessarily the
	// first found. A First jump with copies or not at the head is deleted
	// in every copy and inserted again at the head.
	var out []string
	if j.First && (len(found) > 1 || st.Chains[j.From][0] != found[0]) {
		for _, r := range found {
			out = append(out, "-D "+j.From+" "+r)
		}
		return append(out, "-I "+j.From+" 1 "+found[0])
	}
	for _, r := range found[1:] {
		out = append(out, "-D "+j.From+" "+r)
	}
	return out
}

// Teardown removes every owned chain of rs (retired ones included) and every
// rule that jumps to them. It succeeds on a system where nothing is installed.
func (a *Applier) Teardown(ctx context.Context, rs Ruleset) error {
	owned := rs.Owned()
	states := map[string]State{}
	for _, r := range owned {
		if _, ok := states[r.Table]; ok {
			continue
		}
		st, err := a.save(ctx, r.Table)
		if err != nil {
			return err
		}
		states[r.Table] = st
	}
	return a.removeChains(ctx, rs.Owner, owned, states)
}

// removeChains deletes the jumps into the given chains, then the chains, in
// one restore per table.
func (a *Applier) removeChains(ctx context.Context, owner string, refs []ChainRef, states map[string]State) error {
	byTable := map[string][]string{}
	var tables []string
	for _, r := range refs {
		if st, ok := states[r.Table]; !ok || !st.Has(r.Chain) {
			continue
		}
		if _, ok := byTable[r.Table]; !ok {
			tables = append(tables, r.Table)
		}
		byTable[r.Table] = append(byTable[r.Table], r.Chain)
	}
	var errs []error
	for _, table := range tables {
		chains := byTable[table]
		st := states[table]
		skip := map[string]bool{}
		for _, c := range chains {
			skip[c] = true
		}
		for _, c := range chains {
			for _, ref := range st.Referrers(c, skip) {
				ipt, err := a.ipt()
				if err != nil {
					return err
				}
				if err := ipt.Delete(table, ref[0], Fields(ref[1])...); err != nil && !isNotFound(err) {
					errs = append(errs, fmt.Errorf("removing jump %s/%s -> %s: %w", table, ref[0], c, err))
				}
			}
		}
		var b strings.Builder
		b.WriteString("*" + table + "\n")
		for _, c := range chains {
			b.WriteString(":" + c + " - [0:0]\n")
		}
		for _, c := range chains {
			b.WriteString("-X " + c + "\n")
		}
		b.WriteString("COMMIT\n")
		payload := []byte(b.String())
		if err := a.Backend.Restore(ctx, table, payload); err != nil {
			errs = append(errs, fmt.Errorf("removing %s chains from %s table: %w", owner, table, withLines(err, payload)))
			continue
		}
		a.log().Info("removed", "owner", owner, "table", table, "chains", strings.Join(chains, ","))
	}
	return errors.Join(errs...)
}

func isNotFound(err error) bool {
	s := err.Error()
	return strings.Contains(s, "does a matching rule exist") || strings.Contains(s, "No chain/target/match") ||
		strings.Contains(s, "not found") || strings.Contains(s, "doesn't exist")
}

// Diff compares the live state with rs and describes every difference; an
// empty result means no drift.
func (a *Applier) Diff(ctx context.Context, rs Ruleset) ([]string, error) {
	var drift []string
	for _, table := range rs.tableNames() {
		st, err := a.save(ctx, table)
		if err != nil {
			return nil, err
		}
		for _, t := range rs.Tables {
			if t.Name != table {
				continue
			}
			for _, c := range t.Chains {
				switch {
				case !st.Has(c.Name):
					drift = append(drift, fmt.Sprintf("%s/%s: chain missing", table, c.Name))
				case !slices.Equal(st.Chains[c.Name], c.Rules):
					drift = append(drift, fmt.Sprintf("%s/%s: %d live rules differ from the %d desired (%s)",
						table, c.Name, len(st.Chains[c.Name]), len(c.Rules), firstDifference(st.Chains[c.Name], c.Rules)))
				}
			}
		}
		for _, j := range rs.Jumps {
			if j.Table != table {
				continue
			}
			n := 0
			for _, r := range st.Chains[j.From] {
				if Target(r) == j.To {
					n++
				}
			}
			if n != 1 {
				drift = append(drift, fmt.Sprintf("%s/%s: %d jumps to %s, want 1", table, j.From, n, j.To))
			} else if j.First && Target(st.Chains[j.From][0]) != j.To {
				drift = append(drift, fmt.Sprintf("%s/%s: the jump to %s is not the first rule", table, j.From, j.To))
			}
		}
		for _, r := range rs.Retired {
			if r.Table == table && st.Has(r.Chain) {
				drift = append(drift, fmt.Sprintf("%s/%s: retired chain still present", table, r.Chain))
			}
		}
	}
	return drift, nil
}

// Present reports whether any owned chain of rs exists.
func (a *Applier) Present(ctx context.Context, rs Ruleset) (bool, error) {
	for _, table := range rs.tableNames() {
		st, err := a.save(ctx, table)
		if err != nil {
			return false, err
		}
		for _, r := range rs.Owned() {
			if r.Table == table && st.Has(r.Chain) {
				return true, nil
			}
		}
	}
	return false, nil
}

func firstDifference(live, want []string) string {
	for i := 0; i < len(live) || i < len(want); i++ {
		switch {
		case i >= len(live):
			return fmt.Sprintf("missing rule %d: %s", i+1, want[i])
		case i >= len(want):
			return fmt.Sprintf("extra rule %d: %s", i+1, live[i])
		case live[i] != want[i]:
			return fmt.Sprintf("rule %d is %q, want %q", i+1, live[i], want[i])
		}
	}
	return "same rules"
}

var failedLine = regexp.MustCompile(`line:? (\d+)`)

// withLines adds the payload lines around the line iptables-restore
// reported as failing, the way kube-proxy does.
func withLines(err error, payload []byte) error {
	m := failedLine.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	n, _ := strconv.Atoi(m[1])
	return fmt.Errorf("%w\n%s", err, ExtractLines(payload, n, 2))
}

// ExtractLines returns lines n-count..n+count of payload (1-based), the
// failing one marked with "=>".
func ExtractLines(payload []byte, n, count int) string {
	lines := strings.Split(strings.TrimRight(string(payload), "\n"), "\n")
	var b strings.Builder
	for i := max(1, n-count); i <= min(len(lines), n+count); i++ {
		mark := "  "
		if i == n {
			mark = "=>"
		}
		fmt.Fprintf(&b, "%s %4d: %s\n", mark, i, lines[i-1])
	}
	return strings.TrimRight(b.String(), "\n")
}
