package onegate_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/onecontext"
	"github.com/hypercx/vrouter/pkg/onegate"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

const token = "s3cr3t-0negate-t0ken"

var addrs = cmpopts.EquateComparable(netip.Addr{})

// lab is a client talking to an in-process simulator, with its log captured.
type lab struct {
	t      *testing.T
	sim    *sim.Server
	srv    *httptest.Server
	client *onegate.Client
	logs   *bytes.Buffer // slog handlers serialise writes; the client logs from the caller's goroutine
}

// fastConfig retries quickly so the tests do not wait.
func fastConfig(endpoint string) onegate.Config {
	u, err := onegate.ParseEndpoint(endpoint)
	if err != nil {
		panic(err)
	}
	return onegate.Config{Endpoint: u, Token: token, VMID: 10, Timeout: 5 * time.Second, Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}
}

func newLab(t *testing.T, mod ...func(*onegate.Config)) *lab {
	t.Helper()
	s := sim.New("../../tests/onegatesim/testdata", token)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	cfg := fastConfig(srv.URL)
	for _, m := range mod {
		m(&cfg)
	}
	l := &lab{t: t, sim: s, srv: srv, logs: &bytes.Buffer{}}
	l.client = l.newClient(cfg)
	return l
}

func (l *lab) newClient(cfg onegate.Config) *onegate.Client {
	l.t.Helper()
	log := slog.New(slog.NewTextHandler(l.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := onegate.New(cfg, log.With("config", cfg))
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(c.Close)
	return c
}

// requests counts the simulator's requests whose path starts with prefix.
func (l *lab) requests(prefix string) int {
	n := 0
	for _, r := range l.sim.Requests() {
		if strings.HasPrefix(r.Path, prefix) {
			n++
		}
	}
	return n
}

// noToken fails the test if the token appears in the logs or in errs.
func (l *lab) noToken(errs ...error) {
	l.t.Helper()
	if strings.Contains(l.logs.String(), token) {
		l.t.Errorf("the token is in the log:\n%s", l.logs.String())
	}
	for _, err := range errs {
		if err != nil && strings.Contains(err.Error(), token) {
			l.t.Errorf("the token is in an error: %v", err)
		}
	}
}

func TestConfigFromContext(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		name    string
		env     []string
		want    string // Config.String()
		path    string // endpoint path kept
		tokFile bool
		err     string
	}{
		{name: "not configured", env: []string{"VMID=4"}, err: onegate.ErrNotConfigured.Error()},
		{name: "prefix kept", env: []string{"ONEGATE_ENDPOINT=https://cloud.example:5030/onegate/", "TOKENTXT=x", "VMID=4"},
			want: "OneGate https://cloud.example:5030/onegate vmid=4 skip_tls_verify=false", path: "/onegate"},
		{name: "token file", env: []string{"ONEGATE_ENDPOINT=http://169.254.16.9:5030", "VMID=0", "ONEAPP_VNF_ONEGATE_SKIP_TLS_VERIFY=yes"},
			want: "OneGate http://169.254.16.9:5030 vmid=0 skip_tls_verify=true", tokFile: true},
		{name: "bad scheme", env: []string{"ONEGATE_ENDPOINT=ftp://x"}, err: `ONEGATE_ENDPOINT="ftp://x": the scheme must be http or https`},
		{name: "no host", env: []string{"ONEGATE_ENDPOINT=http:///x"}, err: `ONEGATE_ENDPOINT="http:///x": no host`},
		{name: "bad vmid", env: []string{"ONEGATE_ENDPOINT=http://x", "VMID=-3"}, err: `VMID="-3": not a VM ID`},
		{name: "bad skip", env: []string{"ONEGATE_ENDPOINT=http://x", "ONEAPP_VNF_ONEGATE_SKIP_TLS_VERIFY=maybe"}, err: `ONEAPP_VNF_ONEGATE_SKIP_TLS_VERIFY="maybe"`},
		// The value is shown, its password never.
		{name: "bad endpoint with a password", env: []string{"ONEGATE_ENDPOINT=https://oneadmin:pa55word@cloud.example/onegate?x=1"},
			err: `ONEGATE_ENDPOINT="https://oneadmin:xxxxx@cloud.example/onegate?x=1": a query or fragment is not allowed`},
		{name: "unparsable endpoint with a password", env: []string{"ONEGATE_ENDPOINT=http://u:pa55word@cloud.example/%zz"},
			err: `ONEGATE_ENDPOINT="http://u:xxxxx@cloud.example/%zz": not a URL`},
		// No HTTP header carries it: refused at once, not on every poll.
		{name: "token with a line break", env: []string{"ONEGATE_ENDPOINT=http://x", "TOKENTXT=abc\nX-Other: 1"},
			err: `TOKENTXT=(secret, not shown): the token holds a control character`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := onegate.ConfigFromContext(onecontext.FromPairs(tc.env...), fsroot.Root(root))
			if err != nil && (strings.Contains(err.Error(), "pa55word") || strings.Contains(err.Error(), "abc")) {
				t.Errorf("a secret in the message: %v", err)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				var ve *onecontext.VarError
				if !errors.Is(err, onegate.ErrNotConfigured) && !errors.As(err, &ve) {
					t.Errorf("%v is not a *onecontext.VarError (exit 2)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.String() != tc.want || cfg.Endpoint.Path != tc.path {
				t.Errorf("got %s (path %q), want %s (path %q)", cfg, cfg.Endpoint.Path, tc.want, tc.path)
			}
			if got := cfg.TokenPath == filepath.Join(root, onegate.TokenFile); got != tc.tokFile {
				t.Errorf("TokenPath %q", cfg.TokenPath)
			}
		})
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	cfg := fastConfig("http://127.0.0.1:1")
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "cfg", cfg, "token", cfg.Token)
	b, _ := json.Marshal(cfg)
	for _, s := range []string{
		fmt.Sprintf("%v %+v %#v %s %q %x", cfg, cfg, cfg, cfg.Token, cfg.Token, cfg.Token),
		fmt.Sprint(cfg.Token), buf.String(), string(b),
	} {
		if strings.Contains(s, token) {
			t.Errorf("token printed: %s", s)
		}
	}
}

func TestHeadersAndToken(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	vr, err := l.client.VRouter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if vr.ID != 3 || len(vr.NICs) != 2 {
		t.Errorf("vrouter: %+v", vr)
	}
	if _, err := l.client.VNet(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := l.client.VM(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.client.UpdateVM(ctx, onegate.Self, map[string]string{"ONEGATE_X": "1"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range l.sim.Requests() {
		if !r.TokenOK || r.VMID != "10" || r.Accept != "application/json" {
			t.Errorf("%s %s: token ok %t, vmid %q, accept %q", r.Method, r.Path, r.TokenOK, r.VMID, r.Accept)
		}
		extended := r.Path == "/vrouter" || strings.HasPrefix(r.Path, "/vnet/")
		if (r.Query == "extended=true") != extended {
			t.Errorf("%s %s: query %q", r.Method, r.Path, r.Query)
		}
	}
	// A wrong token is a 401, not retried, and neither token shows.
	cfg := l.client.Config()
	cfg.Token = "wrong-" + token
	bad := l.newClient(cfg)
	before := l.requests("/vm")
	_, err = bad.VM(ctx)
	var he *onegate.HTTPError
	if !errors.As(err, &he) || he.Status != 401 {
		t.Fatalf("wrong token: %v", err)
	}
	if n := l.requests("/vm") - before; n != 1 {
		t.Errorf("a 401 was sent %d times", n)
	}
	l.noToken(err)
	if !strings.Contains(l.logs.String(), "OneGate request") {
		t.Error("no debug log captured; the token check proves nothing")
	}
}

func TestTokenFileReadLate(t *testing.T) {
	root := t.TempDir()
	l := newLab(t)
	cfg, err := onegate.ConfigFromContext(onecontext.FromPairs("ONEGATE_ENDPOINT="+l.srv.URL, "VMID=10"), fsroot.Root(root))
	if err != nil {
		t.Fatal(err)
	}
	c := l.newClient(cfg)
	if _, err := c.VM(context.Background()); !strings.Contains(fmt.Sprint(err), "HTTP 401") {
		t.Fatalf("before the token file exists: %v, want 401", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "run/one-context"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, onegate.TokenFile), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VM(context.Background()); err != nil {
		t.Fatalf("after one-context wrote the token: %v", err)
	}
	l.noToken()
}

func TestRetriesThenSuccess(t *testing.T) {
	l := newLab(t)
	l.sim.Inject(sim.Fault{Path: "/vrouter", Status: 503, Count: 2})
	if _, err := l.client.VRouter(context.Background()); err != nil {
		t.Fatalf("after two 503s: %v", err)
	}
	if n := l.requests("/vrouter"); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	// A dropped connection is retried too.
	l.sim.Inject(sim.Fault{Path: "/vm", Drop: true, Count: 2})
	if _, err := l.client.VM(context.Background()); err != nil {
		t.Fatalf("after dropped connections: %v", err)
	}
	// Attempts exhausted: the error says how many.
	l.sim.Inject(sim.Fault{Path: "/service", Status: 502})
	_, err := l.client.Service(context.Background())
	if err == nil || !strings.Contains(err.Error(), "HTTP 502") || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("exhausted: %v", err)
	}
	l.noToken(err)
}

func TestClientErrorsNotRetried(t *testing.T) {
	l := newLab(t)
	_, err := l.client.VNet(context.Background(), 9) // no fixture: 404
	if !onegate.IsNotFound(err) {
		t.Fatalf("VNet 9: %v, want a 404", err)
	}
	if n := l.requests("/vnet/9"); n != 1 {
		t.Errorf("a 404 was sent %d times", n)
	}
	if !strings.Contains(err.Error(), "GET /vnet/9: HTTP 404: Virtual network 9 not found") {
		t.Errorf("error: %v", err)
	}
}

func TestSlowAnswerTimesOut(t *testing.T) {
	l := newLab(t, func(c *onegate.Config) { c.Timeout = 100 * time.Millisecond; c.Attempts = 2 })
	l.sim.Inject(sim.Fault{Path: "/vrouter", Delay: sim.Duration{D: time.Minute}})
	_, err := l.client.VRouter(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow answer: %v, want a timeout", err)
	}
	// Counted by the client: under load a timed-out attempt may not even
	// have reached the simulator.
	if !strings.Contains(err.Error(), "after 2 attempts") {
		t.Errorf("%v: want 2 attempts (a timed-out attempt is retried)", err)
	}
}

func TestCancelStopsRetries(t *testing.T) {
	l := newLab(t, func(c *onegate.Config) { c.Backoff = time.Hour; c.MaxBackoff = time.Hour })
	l.sim.Inject(sim.Fault{Status: 503})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for l.requests("/vm") == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	_, err := l.client.VM(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled during backoff: %v", err)
	}
	if n := l.requests("/vm"); n != 1 {
		t.Errorf("%d requests after cancel", n)
	}
}

func TestOutageServesLastGoodAnswer(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	fresh, err := l.client.Networks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := l.client.ServiceVMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]sim.Fault{"500": {Status: 500}, "dropped": {Drop: true}} {
		t.Run(name, func(t *testing.T) {
			l.sim.Inject(f)
			defer l.sim.ClearFaults()
			n, err := l.client.VNet(ctx, 1)
			var se *onegate.StaleError
			if n == nil || !errors.Is(err, onegate.ErrStale) || !errors.As(err, &se) || se.Request != "GET /vnet/1" {
				t.Fatalf("VNet during an outage: %v, %v", n, err)
			}
			if diff := cmp.Diff(&fresh[2], n, addrs); diff != "" {
				t.Errorf("stale answer differs from the last good one:\n%s", diff)
			}
			nets, err := l.client.Networks(ctx)
			if !errors.Is(err, onegate.ErrStale) {
				t.Fatalf("Networks during an outage: %v", err)
			}
			if diff := cmp.Diff(fresh, nets, addrs); diff != "" {
				t.Errorf("Networks during an outage:\n%s", diff)
			}
			vms, err := l.client.ServiceVMs(ctx)
			if !errors.Is(err, onegate.ErrStale) || len(vms) != len(svc) {
				t.Errorf("ServiceVMs during an outage: %d VMs, %v", len(vms), err)
			}
			l.noToken(err)
		})
	}
	// "Gone" is an answer, not an outage.
	l.sim.ClearFaults()
	l.sim.Inject(sim.Fault{Path: "/vnet/1", Status: 404, Count: 1})
	if n, err := l.client.VNet(ctx, 1); n != nil || !onegate.IsNotFound(err) || errors.Is(err, onegate.ErrStale) {
		t.Errorf("404 after a good answer: %v, %v", n, err)
	}
	// A request never answered before has nothing to fall back to.
	l.sim.Inject(sim.Fault{Status: 500})
	if n, err := l.client.VNet(ctx, 2); n == nil || err == nil {
		t.Errorf("vnet 2 was fetched by Networks: %v %v", n, err)
	}
	if vm, err := l.newClient(l.client.Config()).VM(ctx); vm != nil || err == nil || errors.Is(err, onegate.ErrStale) {
		t.Errorf("never fetched: %v, %v", vm, err)
	}
}

// A 200 answer that is not the document is an error naming it, never a
// panic; a last good answer still stands in for it.
func TestMalformedAnswer(t *testing.T) {
	var body atomicString
	body.set(`{"VNET": {"ID": "4", "NAME": "ok"}}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body.get())
	}))
	defer srv.Close()
	c, err := onegate.New(fastConfig(srv.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.VNet(context.Background(), 4); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{"VNET": {"ID": "4"`, `[]`, `{"VM": {}}`, `<html>proxy error</html>`, ``} {
		body.set(bad)
		n, err := c.VNet(context.Background(), 4)
		if !errors.Is(err, onegate.ErrStale) || n == nil || n.Name != "ok" || !strings.Contains(err.Error(), "GET /vnet/4: decoding vnet document") {
			t.Errorf("answer %q: %v, %v", bad, n, err)
		}
		if _, err := c.VRouter(context.Background()); err == nil || !strings.Contains(err.Error(), "decoding vrouter document") {
			t.Errorf("vrouter answer %q: %v", bad, err)
		}
	}
}

type atomicString struct {
	mu sync.Mutex
	s  string
}

func (a *atomicString) set(s string) { a.mu.Lock(); a.s = s; a.mu.Unlock() }
func (a *atomicString) get() string  { a.mu.Lock(); defer a.mu.Unlock(); return a.s }

func TestTLS(t *testing.T) {
	s := sim.New("../../tests/onegatesim/testdata", token)
	srv := httptest.NewTLSServer(s)
	defer srv.Close()
	env := onecontext.FromPairs("ONEGATE_ENDPOINT="+srv.URL, "TOKENTXT="+token, "VMID=10")
	for _, skip := range []string{"", "NO", "YES"} {
		cfg, err := onegate.ConfigFromContext(env.With("ONEAPP_VNF_ONEGATE_SKIP_TLS_VERIFY="+skip), "")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Backoff = time.Millisecond
		c, err := onegate.New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		before := len(s.Requests())
		_, err = c.VM(context.Background())
		c.Close()
		var cve *tls.CertificateVerificationError
		switch {
		case skip == "YES" && err != nil:
			t.Errorf("SKIP_TLS_VERIFY=YES: %v", err)
		case skip != "YES" && !errors.As(err, &cve):
			t.Errorf("SKIP_TLS_VERIFY=%q: %v, want a certificate verification error", skip, err)
		}
		if skip != "YES" && len(s.Requests()) != before {
			t.Errorf("a request reached the server over an unverified connection")
		}
	}
}

func TestEndpointPathPrefix(t *testing.T) {
	s := sim.New("../../tests/onegatesim/testdata", token)
	mux := http.NewServeMux()
	mux.Handle("/cloud/onegate/", http.StripPrefix("/cloud/onegate", s))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for endpoint, ok := range map[string]bool{
		srv.URL + "/cloud/onegate":  true,
		srv.URL + "/cloud/onegate/": true,
		srv.URL:                     false, // what the original did: the prefix dropped
	} {
		c, err := onegate.New(fastConfig(endpoint), nil)
		if err != nil {
			t.Fatal(err)
		}
		vr, err := c.VRouter(context.Background())
		if ok != (err == nil) || ok && vr.Name != "vr-lab" {
			t.Errorf("endpoint %s: %v %v", endpoint, vr, err)
		}
	}
	if r := s.Requests(); len(r) != 2 || r[0].Path != "/vrouter" {
		t.Errorf("simulator saw %+v", r)
	}
}

func TestNoRedirects(t *testing.T) {
	var leaked atomicString
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.set(r.Header.Get(onegate.HeaderToken))
	}))
	defer other.Close()
	srv := httptest.NewServer(http.RedirectHandler(other.URL+"/vm", http.StatusFound))
	defer srv.Close()
	c, err := onegate.New(fastConfig(srv.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.VM(context.Background()); err == nil || !strings.Contains(err.Error(), "HTTP 302") {
		t.Errorf("redirect: %v", err)
	}
	if leaked.get() != "" {
		t.Error("the token followed a redirect")
	}
}

func TestNew(t *testing.T) {
	if _, err := onegate.New(onegate.Config{}, nil); !errors.Is(err, onegate.ErrNotConfigured) {
		t.Errorf("New without endpoint: %v", err)
	}
	u, _ := url.Parse("http://x")
	c, err := onegate.New(onegate.Config{Endpoint: u}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Config()
	if got.Timeout != onegate.DefaultTimeout || got.Attempts != onegate.DefaultAttempts || got.MaxNetworks != onegate.DefaultMaxNetworks {
		t.Errorf("defaults: %+v", got)
	}
}
