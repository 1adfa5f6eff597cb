package wg

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hypercx/vrouter/pkg/fsroot"
)

// User template attributes of the stored configuration (user guide
// "WireGuard Peer Configuration").
const (
	AttrServer    = "ONEGATE_VNF_WG_SERVER"
	AttrTimestamp = "ONEGATE_VNF_WG_SERVER_TIMESTAMP"
	AttrPeer      = "ONEGATE_VNF_WG_PEER" // + index
	attrPrefix    = "ONEGATE_VNF_WG_"
)

// StateFile is the local copy of the stored configuration: the attributes
// as published, one KEY=VALUE a line, mode 0600 (it holds every key).
const StateFile = "/var/lib/one-wg/stored.env"

// Stored is one stored configuration: the ONEGATE_VNF_WG_* attributes of a
// router VM's user template, or of the local copy.
type Stored struct {
	Source string // "VM 10", "the local copy"
	Attrs  map[string]string
}

// Timestamp reads ONEGATE_VNF_WG_SERVER_TIMESTAMP (unix seconds).
func (s Stored) Timestamp() (int64, error) {
	v := strings.TrimSpace(s.Attrs[AttrTimestamp])
	if v == "" {
		return 0, errors.New("no " + AttrTimestamp)
	}
	t, err := strconv.ParseInt(v, 10, 64)
	if err != nil || t < 0 {
		return 0, fmt.Errorf("%s %q is not a number of seconds", AttrTimestamp, v)
	}
	return t, nil
}

// WGAttrs keeps the ONEGATE_VNF_WG_* attributes of a user template.
func WGAttrs(tmpl map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range tmpl {
		if strings.HasPrefix(k, attrPrefix) && v != "" {
			out[k] = v
		}
	}
	return out
}

// Choice is the stored configuration Choose picked.
type Choice struct {
	From   *Stored // nil: nothing usable is stored
	Server storedServer
	// Timestamp is From's, or the unusable newest one's when Rejected.
	Timestamp int64
	// Rejected: the newest stored configuration was not usable.
	Rejected bool
	Warnings []string
}

// Choose picks the newest stored configuration by timestamp. Among those
// with the newest timestamp the first that parses wins (every router VM
// normally holds the same one). When none of the newest parses, or one
// carries commands, nothing is chosen: an older configuration was replaced
// by that newer one and is not brought back. A configuration without a
// valid timestamp counts as the oldest.
func Choose(cands []Stored) Choice {
	var ch Choice
	type cand struct {
		s  *Stored
		ts int64
		i  int
	}
	var cs []cand
	for i := range cands {
		s := &cands[i]
		if s.Attrs[AttrServer] == "" {
			continue
		}
		ts, err := s.Timestamp()
		if err != nil {
			ch.Warnings = append(ch.Warnings, fmt.Sprintf("%s: %v; taken as the oldest", s.Source, err))
		}
		cs = append(cs, cand{s, ts, i})
	}
	if len(cs) == 0 {
		return ch
	}
	sort.SliceStable(cs, func(a, b int) bool { return cs[a].ts > cs[b].ts })
	for _, c := range cs {
		if c.ts != cs[0].ts {
			break
		}
		srv, err := decodeServer(c.s.Attrs[AttrServer])
		if err != nil {
			ch.Warnings = append(ch.Warnings, fmt.Sprintf("%s: the stored server configuration (timestamp %d) is not used: %v", c.s.Source, c.ts, err))
			continue
		}
		ch.From, ch.Server, ch.Timestamp = c.s, srv, c.ts
		return ch
	}
	ch.Rejected, ch.Timestamp = true, cs[0].ts
	return ch
}

func decodeServer(v string) (storedServer, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(v))
	if err != nil {
		return storedServer{}, errors.New("not base64")
	}
	return parseServerConf(b)
}

func decodeClient(v string) (storedClient, error) {
	if v == "" {
		return storedClient{}, errors.New("not stored")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(v))
	if err != nil {
		return storedClient{}, errors.New("not base64")
	}
	return parseClientConf(b)
}

// Plan says what Resolve decided.
type Plan struct {
	// Reused names the stored configuration whose keys are kept ("" when
	// the configuration is fresh).
	Reused string
	// Fresh: every key is new; Reason says why.
	Fresh  bool
	Reason string
	// NewPeers got new keys in a reused configuration; Dropped are stored
	// peers beyond ONEAPP_VNF_WG_PEERS.
	NewPeers, Dropped []int
	// Changed: the attributes to publish differ from the stored ones, so
	// they carry a new timestamp.
	Changed   bool
	Timestamp int64
	Warnings  []string
}

// NewKeys reports whether keys were generated.
func (p Plan) NewKeys() bool { return p.Fresh || len(p.NewPeers) > 0 }

// Resolved is the shared configuration start applies and publishes.
type Resolved struct {
	Config Config
	// Attrs are the user template attributes to publish (every one).
	Attrs map[string]string
	Plan  Plan
}

// Resolve works out the configuration for spec from the chosen stored one:
// its keys are kept unless the subnet or the port changed (then every key is
// new); peers beyond the stored ones, or whose stored configuration is
// missing or does not match the server's, get new keys; stored peers beyond
// ONEAPP_VNF_WG_PEERS are dropped. Peer configurations are rendered again
// from the context (endpoint, private network), which changes no key.
func Resolve(spec Spec, ch Choice, gen KeyGen, now time.Time) (Resolved, error) {
	plan := Plan{Warnings: append([]string{}, ch.Warnings...)}
	cfg := Config{Addr: spec.Server(), Port: spec.Port}
	srv := ch.Server
	switch {
	case ch.From == nil && ch.Rejected:
		plan.Fresh, plan.Reason = true, "the newest stored configuration is not usable"
	case ch.From == nil:
		plan.Fresh, plan.Reason = true, "no configuration is stored"
	case srv.Port != spec.Port:
		plan.Fresh, plan.Reason = true, fmt.Sprintf("%s changed (the stored configuration listens on %d)", VarListenPort, srv.Port)
	case srv.Addr != spec.Server():
		plan.Fresh, plan.Reason = true, fmt.Sprintf("%s changed (the stored server address is %s)", VarSubnet, srv.Addr)
	}
	stored := map[netip.Addr]storedPeer{}
	if plan.Fresh {
		k, err := gen.PrivateKey()
		if err != nil {
			return Resolved{}, err
		}
		cfg.Key, cfg.New = k, true
	} else {
		plan.Reused = ch.From.Source
		cfg.Key = srv.Key
		for _, p := range srv.Peers {
			stored[p.Addr] = p
		}
	}
	for i := 0; i < spec.Peers; i++ {
		p := Peer{Index: i, Addr: spec.PeerAddr(i)}
		if sp, ok := stored[p.Addr]; ok {
			c, err := decodeClient(ch.From.Attrs[AttrPeer+strconv.Itoa(i)])
			switch {
			case err != nil:
			case c.Key.Public() != sp.Public || c.PSK != sp.PSK || c.Server != srv.Key.Public() || c.Addr.Addr() != p.Addr:
				err = errors.New("its keys do not match the server's")
			}
			if err == nil {
				p.Key, p.PSK = c.Key, sp.PSK
				cfg.Peers = append(cfg.Peers, p)
				delete(stored, p.Addr)
				continue
			}
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("%s: peer %d's configuration (%s%d): %v; it gets new keys",
				ch.From.Source, i, AttrPeer, i, err))
			delete(stored, p.Addr)
		}
		var err error
		if p.Key, err = gen.PrivateKey(); err != nil {
			return Resolved{}, err
		}
		if p.PSK, err = gen.PresharedKey(); err != nil {
			return Resolved{}, err
		}
		p.New = true
		if !plan.Fresh {
			plan.NewPeers = append(plan.NewPeers, i)
		}
		cfg.Peers = append(cfg.Peers, p)
	}
	for a := range stored {
		plan.Dropped = append(plan.Dropped, int(offset(spec.Subnet.Addr(), a))-2)
	}
	sort.Ints(plan.Dropped)

	attrs := map[string]string{AttrServer: base64.StdEncoding.EncodeToString(ServerConf(cfg))}
	for _, p := range cfg.Peers {
		attrs[AttrPeer+strconv.Itoa(p.Index)] = base64.StdEncoding.EncodeToString(ClientConf(cfg, p, spec.EndpointAddr(), spec.Private))
	}
	plan.Timestamp = now.Unix()
	plan.Changed = ch.From == nil || !sameAttrs(ch.From.Attrs, attrs)
	switch {
	case !plan.Changed:
		plan.Timestamp = ch.Timestamp
	case plan.Timestamp <= ch.Timestamp:
		// A clock behind the stored timestamp (another instance's, or
		// a timestamp from the future) must still make this
		// configuration the newest; so must it over an unusable one
		// that a VM OneGate could not write still holds, or every
		// start would make new keys again.
		plan.Timestamp = ch.Timestamp + 1
	}
	attrs[AttrTimestamp] = strconv.FormatInt(plan.Timestamp, 10)
	return Resolved{Config: cfg, Attrs: attrs, Plan: plan}, nil
}

// sameAttrs compares stored attributes with desired ones, the timestamp
// aside.
func sameAttrs(stored, desired map[string]string) bool {
	for k, v := range desired {
		if k != AttrTimestamp && strings.TrimSpace(stored[k]) != v {
			return false
		}
	}
	for k := range stored {
		if _, ok := desired[k]; !ok && k != AttrTimestamp && isPeerAttr(k) {
			return false
		}
	}
	return true
}

// isPeerAttr reports whether k is ONEGATE_VNF_WG_PEER<n>.
func isPeerAttr(k string) bool {
	n, ok := strings.CutPrefix(k, AttrPeer)
	if !ok || n == "" {
		return false
	}
	_, err := strconv.Atoi(n)
	return err == nil && strings.TrimLeft(n, "0123456789") == ""
}

// ReadLocal reads the local copy; a missing file is no configuration.
func ReadLocal(root fsroot.Root) (*Stored, error) {
	b, err := root.ReadFile(StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the local copy %s: %w", StateFile, err)
	}
	attrs := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if ok && strings.HasPrefix(k, attrPrefix) && v != "" {
			attrs[k] = v
		}
	}
	return &Stored{Source: "the local copy " + StateFile, Attrs: attrs}, nil
}

// WriteLocal writes the local copy (0600, in a 0700 directory) when it
// changed.
func WriteLocal(root fsroot.Root, attrs map[string]string) (bool, error) {
	if err := root.MkdirAll("/var/lib/one-wg", 0o700); err != nil {
		return false, fmt.Errorf("creating the local copy's directory: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("# one-wg: the WireGuard configuration as published to the router VMs' user templates.\n# It holds private keys: keep it 0600.\n")
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(k + "=" + attrs[k] + "\n")
	}
	changed, err := root.WriteFile(StateFile, b.Bytes(), 0o600)
	if err != nil {
		return false, fmt.Errorf("writing the local copy: %w", err)
	}
	return changed, nil
}
