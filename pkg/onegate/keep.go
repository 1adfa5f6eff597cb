package onegate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The last good answers on disk (Config.KeepDir): one file per request,
// written atomically when the answer changes (an unchanged poll writes
// nothing), readable by root alone (documents may hold secrets). A file
// names the endpoint and VM it came from; an answer from another OneGate or
// another VM ID is never used.

type keptFile struct {
	Source string          `json:"source"`
	At     time.Time       `json:"at"`
	Body   json.RawMessage `json:"body"`
}

// keepName is the file of a request path: "/vnet/3" is "vnet-3.json".
func (c *Client) keepName(path string) string {
	name := strings.Trim(strings.ReplaceAll(path, "/", "-"), "-")
	return filepath.Join(c.cfg.KeepDir, name+".json")
}

// keepSource identifies where answers come from (endpoint and VM ID), as a
// digest: the endpoint may carry a password.
func (c *Client) keepSource() string {
	sum := sha256.Sum256([]byte(c.cfg.Endpoint.String() + "|" + strconv.Itoa(c.cfg.VMID)))
	return hex.EncodeToString(sum[:8])
}

// keep writes a good answer; a failure is logged, never fatal.
func (c *Client) keep(path string, body []byte) {
	if c.cfg.KeepDir == "" {
		return
	}
	b, err := json.Marshal(keptFile{Source: c.keepSource(), At: c.now().UTC(), Body: body})
	if err == nil {
		err = writeAtomic(c.keepName(path), b)
	}
	if err != nil {
		c.log.Warn("keeping the OneGate answer on disk", "request", "GET "+path, "err", err)
	}
}

// kept reads the answer kept for path, if it is from this OneGate and VM.
func (c *Client) kept(path string) (answer, bool) {
	if c.cfg.KeepDir == "" {
		return answer{}, false
	}
	b, err := os.ReadFile(c.keepName(path))
	if err != nil {
		return answer{}, false
	}
	var f keptFile
	if json.Unmarshal(b, &f) != nil || f.Source != c.keepSource() || len(f.Body) == 0 {
		return answer{}, false
	}
	return answer{body: f.Body, at: f.At}, true
}

// forget removes what is kept for path (OneGate said it is gone).
func (c *Client) forget(path string) {
	if c.cfg.KeepDir != "" {
		_ = os.Remove(c.keepName(path))
	}
}

func writeAtomic(name string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), ".keep-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }()
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
