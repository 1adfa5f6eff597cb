// Package netfilter applies iptables rules atomically, in chains a service
// owns. Each apply sends at most one `iptables-restore --noflush -w` payload
// per table: owned chains that are missing are declared and filled
// (`:CHAIN - [0:0]`), chains with a small change are patched in place (`-D`
// and `-I` lines, so the rules that stay keep their counters), others are
// flushed and refilled, and the one jump from each built-in chain is added
// (or moved back to the head, for First jumps) in the same transaction. An
// unchanged ruleset sends nothing. Teardown removes the jumps first (with
// go-iptables) and then the chains. Nothing outside the owned chains is ever
// touched.
package netfilter

import (
	"fmt"
	"regexp"
	"strings"
)

// Ruleset is everything one service owns in netfilter.
type Ruleset struct {
	// Owner is written as the comment of every jump ("one-nat4").
	Owner string
	// Tables declare every chain the owner has, each with its full content;
	// an owned chain with no rules is declared empty.
	Tables []Table
	// Jumps hook owned chains into built-in chains.
	Jumps []Jump
	// Retired are chains this owner may have created before (another mode,
	// an older version); they are removed when present.
	Retired []ChainRef
}

// Table holds the owned chains of one table ("nat", "filter", "mangle", "raw").
type Table struct {
	Name   string
	Chains []Chain
}

// Chain is an owned chain and its rules, each a rule specification without
// the leading "-A CHAIN", written exactly as iptables-save prints it (so the
// live state can be compared with the desired one).
type Chain struct {
	Name  string
	Rules []string
}

// Jump hooks an owned chain into a built-in one.
type Jump struct {
	Table string
	From  string // built-in chain: PREROUTING, POSTROUTING, ...
	To    string // owned chain
	// First inserts the jump at position 1 instead of appending it, and
	// keeps it there: a jump found further down is moved back to the head
	// (so two owners must never both ask for First in one chain).
	First bool
}

// ChainRef names a chain in a table.
type ChainRef struct{ Table, Chain string }

// Spec returns the rule specification of the jump, as iptables-save prints it.
func (j Jump) Spec(owner string) []string {
	return []string{"-m", "comment", "--comment", owner, "-j", j.To}
}

// Owned lists every chain the ruleset owns, retired ones included.
func (rs Ruleset) Owned() []ChainRef {
	var out []ChainRef
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			out = append(out, ChainRef{t.Name, c.Name})
		}
	}
	return append(out, rs.Retired...)
}

// RuleCount is the number of rules in owned chains.
func (rs Ruleset) RuleCount() int {
	n := 0
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			n += len(c.Rules)
		}
	}
	return n
}

var chainName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,27}$`)

// builtinTargets are the targets that are not chains.
var builtinTargets = map[string]bool{
	"ACCEPT": true, "DROP": true, "RETURN": true, "REJECT": true, "QUEUE": true, "NFQUEUE": true,
	"DNAT": true, "SNAT": true, "MASQUERADE": true, "REDIRECT": true, "NETMAP": true,
	"MARK": true, "CONNMARK": true, "LOG": true, "NFLOG": true, "CT": true, "NOTRACK": true,
	"TPROXY": true, "TCPMSS": true, "CLASSIFY": true, "DSCP": true, "TOS": true, "TTL": true, "HMARK": true,
	"CHECKSUM": true, "TRACE": true, "SET": true, "AUDIT": true, "CONNSECMARK": true, "SECMARK": true,
}

// Validate checks what iptables-restore on the nf_tables backend would let
// through: names, rules that would break the payload, jumps to chains that do
// not exist. Render calls it so a bad ruleset never reaches the kernel.
func (rs Ruleset) Validate() error {
	if strings.ContainsAny(rs.Owner, " \t\n\"") || rs.Owner == "" {
		return fmt.Errorf("owner %q must be one word", rs.Owner)
	}
	declared := map[ChainRef]bool{}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			if !chainName.MatchString(c.Name) {
				return fmt.Errorf("chain name %q is not valid", c.Name)
			}
			if declared[ChainRef{t.Name, c.Name}] {
				return fmt.Errorf("chain %s declared twice in table %s", c.Name, t.Name)
			}
			declared[ChainRef{t.Name, c.Name}] = true
		}
	}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				if strings.ContainsAny(r, "\n\r\x00") {
					return fmt.Errorf("chain %s: rule %q contains a line break", c.Name, r)
				}
				if tgt := Target(r); tgt != "" && !builtinTargets[tgt] && !declared[ChainRef{t.Name, tgt}] {
					return fmt.Errorf("chain %s: rule %q jumps to %s, which is not declared in table %s", c.Name, r, tgt, t.Name)
				}
			}
		}
	}
	for _, j := range rs.Jumps {
		if !declared[ChainRef{j.Table, j.To}] {
			return fmt.Errorf("jump from %s to undeclared chain %s in table %s", j.From, j.To, j.Table)
		}
	}
	return nil
}

// Target returns the -j/-g target of a rule specification, "" if none. It
// does not allocate: Validate and ParseSave call it for every rule.
func Target(rule string) string {
	for end := len(rule); end > 0; {
		i := strings.LastIndex(rule[:end], " -")
		start := i + 1
		if i < 0 {
			start = 0
		}
		rest := rule[start:]
		for _, flag := range [...]string{"-j ", "-g ", "--jump ", "--goto "} {
			if strings.HasPrefix(rest, flag) {
				t := rest[len(flag):]
				if sp := strings.IndexByte(t, ' '); sp >= 0 {
					t = t[:sp]
				}
				return strings.Trim(t, `"`)
			}
		}
		if i < 0 {
			return ""
		}
		end = i
	}
	return ""
}

// Fields splits a rule specification as iptables-save quotes it: blanks
// separate words, double quotes group them, backslash escapes inside quotes.
func Fields(s string) []string {
	var out []string
	var b strings.Builder
	in, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			quoted = !quoted
			in = true
		case !quoted && (c == ' ' || c == '\t'):
			if in {
				out = append(out, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, b.String())
	}
	return out
}

// Payload renders the iptables-restore text that replaces the given chains
// of one table (every chain of t when only is nil).
func Payload(t Table, only map[string]bool) []byte {
	n := len(t.Name) + len("*\nCOMMIT\n")
	for _, c := range t.Chains {
		if only == nil || only[c.Name] {
			n += len(c.Name) + len(": - [0:0]\n")
			for _, r := range c.Rules {
				n += len("-A  \n") + len(c.Name) + len(r)
			}
		}
	}
	// Sized up front and written piece by piece: 20,000 rules cost one
	// allocation instead of a concatenation per rule.
	b := make([]byte, 0, n)
	b = append(append(append(b, '*'), t.Name...), '\n')
	for _, c := range t.Chains {
		if only == nil || only[c.Name] {
			b = append(append(append(b, ':'), c.Name...), " - [0:0]\n"...)
		}
	}
	for _, c := range t.Chains {
		if only != nil && !only[c.Name] {
			continue
		}
		for _, r := range c.Rules {
			b = append(append(append(append(append(b, "-A "...), c.Name...), ' '), r...), '\n')
		}
	}
	return append(b, "COMMIT\n"...)
}

// Render prints the rulesets' payloads by table, for `render`: every owned
// chain declared and filled, followed by the jumps as comments, since Apply
// adds a jump only when it is missing (or, for a First jump, moves it back
// to the head).
func Render(rs Ruleset) map[string][]byte {
	out := map[string][]byte{}
	for _, t := range rs.Tables {
		p := string(Payload(t, nil))
		var jumps strings.Builder
		for _, j := range rs.Jumps {
			if j.Table == t.Name {
				pos := "appended to"
				if j.First {
					pos = "inserted first in"
				}
				fmt.Fprintf(&jumps, "# jump %s: -A %s %s\n", pos, j.From, strings.Join(j.Spec(rs.Owner), " "))
			}
		}
		out[t.Name] = []byte(p + jumps.String())
	}
	return out
}
