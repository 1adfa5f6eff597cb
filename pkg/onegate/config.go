package onegate

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hypercx/vrouter/pkg/fsroot"
	"github.com/hypercx/vrouter/pkg/onecontext"
)

// Context variables the client reads.
const (
	VarEndpoint      = "ONEGATE_ENDPOINT"
	VarToken         = "TOKENTXT"
	VarVMID          = "VMID"
	VarSkipTLSVerify = "ONEAPP_VNF_ONEGATE_SKIP_TLS_VERIFY"
)

// TokenFile is where one-context leaves the OneGate token when TOKENTXT is
// not in the context (taken under --root).
const TokenFile = "/run/one-context/token.txt"

// Defaults of Config's tuning fields (used when they are zero).
const (
	DefaultTimeout     = 10 * time.Second
	DefaultAttempts    = 4
	DefaultBackoff     = 500 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Second
	DefaultMaxNetworks = 256
)

// Tuning of a one-off question asked by a verb that must answer soon
// (render, status): one-failover gives such a verb 30 s, and the defaults
// (four attempts of 10 s) would outlast that against a slow OneGate.
const (
	QuickTimeout  = 3 * time.Second
	QuickAttempts = 2
	// QuickTotal bounds the whole question (discovery asks for several
	// documents).
	QuickTotal = 8 * time.Second
)

// ErrNotConfigured means the context has no ONEGATE_ENDPOINT: the cloud has
// no OneGate, or this VM was not given access to it. It is not an invalid
// context; each caller decides what a feature does without OneGate.
var ErrNotConfigured = errors.New("OneGate is not configured (ONEGATE_ENDPOINT is not set)")

// Secret is a string that never shows itself: fmt, slog and encoding/json
// print "(secret)" in its place. The OneGate token is one.
type Secret string

// Format covers every fmt verb, %#v included.
func (Secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte("(secret)")) }
func (Secret) String() string               { return "(secret)" }
func (Secret) LogValue() slog.Value         { return slog.StringValue("(secret)") }
func (Secret) MarshalText() ([]byte, error) { return []byte("(secret)"), nil }
func (s Secret) isSet() bool                { return s != "" }

// Config is how to reach OneGate. ConfigFromContext builds it from the
// context; tests build it directly. Zero tuning fields take the defaults.
type Config struct {
	// Endpoint is ONEGATE_ENDPOINT, path prefix included: requests go to
	// <Endpoint>/vrouter, <Endpoint>/vnet/<id> ... (the original dropped the
	// prefix, which broke OneGate behind a reverse proxy).
	Endpoint *url.URL
	// Token is TOKENTXT; when empty, TokenPath is read before each request,
	// so a daemon started before one-context wrote the token picks it up.
	Token     Secret
	TokenPath string
	// VMID is this VM's ID (X-ONEGATE-VMID); -1 sends no header.
	VMID int
	// SkipTLSVerify turns certificate verification off
	// (ONEAPP_VNF_ONEGATE_SKIP_TLS_VERIFY=YES, for self-signed clouds).
	SkipTLSVerify bool

	// Timeout bounds each attempt (connect, send, read the whole body).
	Timeout time.Duration
	// Attempts is the number of tries of one request (first try included).
	Attempts int
	// Backoff is the pause before the first retry; it doubles on each
	// retry, up to MaxBackoff, with random jitter.
	Backoff, MaxBackoff time.Duration
	// MaxNetworks bounds Networks' discovery.
	MaxNetworks int

	// KeepDir, when set, is a directory (the --root prefix included) where
	// the last good answers are also kept on disk, so a restarted daemon
	// (rc-service restart, one-failover's stop and start) still has them
	// when OneGate does not answer. Empty: memory only.
	KeepDir string
}

// LogValue describes the configuration without the token.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.endpointString()),
		slog.Bool("token", c.Token.isSet() || c.TokenPath != ""),
		slog.Int("vmid", c.VMID),
		slog.Bool("skip_tls_verify", c.SkipTLSVerify),
	)
}

// String describes the configuration without the token.
func (c Config) String() string {
	return fmt.Sprintf("OneGate %s vmid=%d skip_tls_verify=%t", c.endpointString(), c.VMID, c.SkipTLSVerify)
}

func (c Config) endpointString() string {
	if c.Endpoint == nil {
		return "(none)"
	}
	return c.Endpoint.Redacted()
}

// ConfigFromContext reads ONEGATE_ENDPOINT, TOKENTXT (falling back to
// /run/one-context/token.txt under root), VMID and
// ONEAPP_VNF_ONEGATE_SKIP_TLS_VERIFY. It returns ErrNotConfigured when the
// endpoint is not set, and a *onecontext.VarError for a malformed value.
func ConfigFromContext(env onecontext.Env, root fsroot.Root) (Config, error) {
	skip, err := env.Bool(VarSkipTLSVerify, false)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{VMID: -1, SkipTLSVerify: skip}
	if v := strings.TrimSpace(env.Get(VarVMID)); v != "" {
		id, err := strconv.Atoi(v)
		if err != nil || id < 0 {
			return Config{}, onecontext.Errorf(VarVMID, env.Get(VarVMID), "not a VM ID (a whole number 0 or more)")
		}
		cfg.VMID = id
	}
	raw := strings.TrimSpace(env.Get(VarEndpoint))
	if raw == "" {
		return cfg, ErrNotConfigured
	}
	u, err := ParseEndpoint(raw)
	if err != nil {
		return Config{}, onecontext.Errorf(VarEndpoint, RedactEndpoint(env.Get(VarEndpoint)), "%v", err)
	}
	cfg.Endpoint = u
	if t := strings.TrimSpace(env.Get(VarToken)); t != "" {
		// Go refuses such a header value on every request: a daemon would
		// poll in vain for ever. The message hides the value (a secret).
		if strings.ContainsFunc(t, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return Config{}, onecontext.Errorf(VarToken, t, "the token holds a control character (a line break?), which no HTTP header can carry")
		}
		cfg.Token = Secret(t)
	} else {
		cfg.TokenPath = root.Path(TokenFile)
	}
	return cfg, nil
}

// userinfoPassword is the password of a URL's user information
// ("//user:password@host"), whether or not the rest of the URL parses.
var userinfoPassword = regexp.MustCompile(`(//[^/?#@]*?:)[^/?#@]*@`)

// RedactEndpoint hides the password an endpoint may carry (a reverse proxy
// with basic authentication), for messages that show the value.
func RedactEndpoint(raw string) string {
	return userinfoPassword.ReplaceAllString(raw, "${1}xxxxx@")
}

// ParseEndpoint checks an OneGate endpoint: http or https, a host, no query
// or fragment. The path is kept as a prefix.
func ParseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("the scheme must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("no host")
	case u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return nil, errors.New("a query or fragment is not allowed")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// Quick returns c tuned for a one-off question (QuickTimeout a try,
// QuickAttempts tries); bound the question itself with QuickTotal.
//
// A quick question neither reads nor writes KeepDir: render and status
// have no side effects, and show what a running daemon keeps from its own
// state.
func (c Config) Quick() Config {
	c.Timeout, c.Attempts = QuickTimeout, QuickAttempts
	c.KeepDir = ""
	return c
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Attempts <= 0 {
		c.Attempts = DefaultAttempts
	}
	if c.Backoff <= 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxBackoff < c.Backoff {
		c.MaxBackoff = c.Backoff
	}
	if c.MaxNetworks <= 0 {
		c.MaxNetworks = DefaultMaxNetworks
	}
	return c
}
