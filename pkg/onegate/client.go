package onegate

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Header names of the OneGate protocol.
const (
	HeaderToken = "X-ONEGATE-TOKEN"
	HeaderVMID  = "X-ONEGATE-VMID"
)

// maxBody bounds a document: an extended vnet of a /16 with every address
// leased is about 15 MB.
const maxBody = 64 << 20

// ErrStale marks an answer that is not fresh: the request failed and the
// result is the last good answer to the same request. Test with
// errors.Is(err, onegate.ErrStale); the error also wraps the failure.
var ErrStale = errors.New("serving the last good OneGate answer")

// StaleError is the error returned with a last good answer.
type StaleError struct {
	Request string    // "GET /vnet/3"
	Since   time.Time // when that answer was received
	Err     error     // why the request failed this time
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("%s failed, using the answer of %s: %v", e.Request, e.Since.Format(time.RFC3339), e.Err)
}

// Unwrap makes errors.Is(err, ErrStale) true and exposes the failure.
func (e *StaleError) Unwrap() []error { return []error{ErrStale, e.Err} }

// HTTPError is an answer with a non-2xx status. Message is the start of the
// server's text (OneGate answers errors in plain text).
type HTTPError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *HTTPError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s %s: HTTP %d", e.Method, e.Path, e.Status)
	}
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Message)
}

// IsNotFound reports whether err is (or wraps) an HTTP 404 answer.
func IsNotFound(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Status == http.StatusNotFound
}

// Client talks to OneGate. It is safe for concurrent use. Its zero value is
// not usable: build it with New.
type Client struct {
	cfg  Config
	hc   *http.Client
	log  *slog.Logger
	now  func() time.Time
	mu   sync.Mutex
	last map[string]answer
}

type answer struct {
	body []byte
	at   time.Time
}

// New returns a client for cfg; it returns ErrNotConfigured when cfg has no
// endpoint. log may be nil.
func New(cfg Config, log *slog.Logger) (*Client, error) {
	if cfg.Endpoint == nil {
		return nil, ErrNotConfigured
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	tr := &http.Transport{
		// No proxy from the environment: a stray HTTP_PROXY must not
		// receive the token.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.SkipTLSVerify}, //nolint:gosec // documented opt-in (ONEAPP_VNF_ONEGATE_SKIP_TLS_VERIFY)
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	hc := &http.Client{
		Transport: tr,
		// Never follow redirects: Go would copy X-ONEGATE-TOKEN to
		// whatever host the redirect names.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Client{cfg: cfg, hc: hc, log: log, now: time.Now, last: map[string]answer{}}, nil
}

// Config returns the client's configuration (defaults filled in).
func (c *Client) Config() Config { return c.cfg }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// VRouter returns the virtual router this VM belongs to.
func (c *Client) VRouter(ctx context.Context) (*VRouter, error) {
	return fetch(ctx, c, "/vrouter", extended, DecodeVRouter)
}

// VNet returns network id with the extended lease data (NIC names, alias
// parents, EXTERNAL, BACKEND and the ONEGATE_* attributes of backends).
func (c *Client) VNet(ctx context.Context, id int) (*VNet, error) {
	if id < 0 {
		return nil, fmt.Errorf("GET /vnet: invalid network ID %d", id)
	}
	return fetch(ctx, c, "/vnet/"+strconv.Itoa(id), extended, DecodeVNet)
}

// Service returns the OneFlow service this VM belongs to.
func (c *Client) Service(ctx context.Context) (*Service, error) {
	return fetch(ctx, c, "/service", nil, DecodeService)
}

// VM returns this VM (the one named by VMID).
func (c *Client) VM(ctx context.Context) (*VM, error) {
	return fetch(ctx, c, "/vm", nil, DecodeVM)
}

// VMByID returns VM id (OneGate allows VMs of the same service or virtual router).
func (c *Client) VMByID(ctx context.Context, id int) (*VM, error) {
	if id < 0 {
		return nil, fmt.Errorf("GET /vms: invalid VM ID %d", id)
	}
	return fetch(ctx, c, "/vms/"+strconv.Itoa(id), nil, DecodeVM)
}

var extended = url.Values{"extended": {"true"}}

// fetch GETs a document and decodes it. On success the body is kept as the
// last good answer; on failure that answer, if any, is returned with a
// *StaleError, unless OneGate answered 400 or 404.
func fetch[T any](ctx context.Context, c *Client, path string, query url.Values, decode func([]byte) (*T, error)) (*T, error) {
	body, err := c.do(ctx, http.MethodGet, path, query, nil, nil)
	if err == nil {
		v, derr := decode(body)
		if derr == nil {
			c.mu.Lock()
			prev, had := c.last[path]
			c.last[path] = answer{body: body, at: c.now()}
			c.mu.Unlock()
			if !had || !bytes.Equal(prev.body, body) {
				c.keep(path, body)
			}
			return v, nil
		}
		err = fmt.Errorf("GET %s: %w", path, derr)
	}
	c.mu.Lock()
	prev, ok := c.last[path]
	gone := refused(err)
	if gone {
		// The object is gone or no longer visible: a definitive answer,
		// not an outage.
		delete(c.last, path)
		ok = false
	}
	c.mu.Unlock()
	if gone {
		c.forget(path)
	}
	if !ok && !gone {
		if kept, found := c.kept(path); found {
			c.log.Warn("OneGate does not answer; using the answer kept on disk", "request", "GET "+path, "since", kept.at.Format(time.RFC3339))
			c.mu.Lock()
			if cur, raced := c.last[path]; raced {
				kept = cur // a concurrent call got an answer meanwhile
			} else {
				c.last[path] = kept
			}
			c.mu.Unlock()
			prev, ok = kept, true
		}
	}
	if ok {
		if v, derr := decode(prev.body); derr == nil {
			return v, &StaleError{Request: "GET " + path, Since: prev.at, Err: err}
		}
	}
	return nil, err
}

// do sends one request with retries: network errors, attempt timeouts and
// 5xx answers are retried with exponential backoff and jitter, 4xx answers
// and a cancelled ctx are not. stop, when set, ends the retries early for
// an answer it recognises.
func (c *Client) do(ctx context.Context, method, path string, query, form url.Values, stop func(*HTTPError) bool) ([]byte, error) {
	var err error
	for attempt := 1; ; attempt++ {
		var body []byte
		var retry bool
		body, retry, err = c.once(ctx, method, path, query, form)
		if err == nil {
			return body, nil
		}
		var he *HTTPError
		if errors.As(err, &he) && stop != nil && stop(he) {
			return nil, err
		}
		if !retry || attempt >= c.cfg.Attempts || ctx.Err() != nil {
			if attempt > 1 {
				err = fmt.Errorf("%w (after %d attempts)", err, attempt)
			}
			return nil, err
		}
		pause := c.backoff(attempt)
		c.log.Debug("OneGate request failed, retrying", "method", method, "path", path, "attempt", attempt, "pause", pause, "err", err)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%s %s: %w (after %d attempts; last: %v)", method, path, ctx.Err(), attempt, err)
		case <-t.C:
		}
	}
}

// backoff is Backoff·2^(attempt-1), capped at MaxBackoff, jittered to 50–100 %.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.Backoff
	for i := 1; i < attempt && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.cfg.MaxBackoff)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// once sends one attempt; retry says whether a failure is worth retrying.
func (c *Client) once(ctx context.Context, method, path string, query, form url.Values) (body []byte, retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	u := *c.cfg.Endpoint
	u.Path = c.cfg.Endpoint.Path + path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(actx, method, u.String(), rd)
	if err != nil {
		return nil, false, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "hypercx-vrouter")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.cfg.VMID >= 0 {
		req.Header.Set(HeaderVMID, strconv.Itoa(c.cfg.VMID))
	}
	token, err := c.token()
	if err != nil {
		return nil, false, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if token != "" {
		req.Header.Set(HeaderToken, token)
	}
	start := c.now()
	resp, err := c.hc.Do(req)
	if err != nil {
		// The attempt's own timeout is worth a retry; the caller's
		// cancellation is not (do checks ctx), nor a certificate that
		// does not verify.
		var cve *tls.CertificateVerificationError
		return nil, !errors.As(err, &cve), fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	c.log.Debug("OneGate request", "method", method, "path", path, "status", resp.StatusCode, "bytes", len(body), "elapsed", c.now().Sub(start))
	if err != nil {
		return nil, true, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if len(body) > maxBody {
		return nil, false, fmt.Errorf("%s %s: answer larger than %d MB", method, path, maxBody>>20)
	}
	if resp.StatusCode/100 != 2 {
		he := &HTTPError{Method: method, Path: path, Status: resp.StatusCode, Message: errorText(body, token)}
		return nil, resp.StatusCode >= 500, he
	}
	return body, false, nil
}

// token returns the configured token, else the token file's content (read
// on every request: one-context may write it after the daemon started).
func (c *Client) token() (string, error) {
	if c.cfg.Token.isSet() {
		return string(c.cfg.Token), nil
	}
	if c.cfg.TokenPath == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.cfg.TokenPath)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the OneGate token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// errorText is the first line of an error answer, short, printable, and
// without the token should a proxy ever echo the request.
func errorText(body []byte, token string) string {
	s := string(body)
	if !utf8.ValidString(s) {
		return ""
	}
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if token != "" {
		s = strings.ReplaceAll(s, token, "(secret)")
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}
