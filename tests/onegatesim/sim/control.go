package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Fault makes matching OneGate requests fail. A fault applies to the next
// Count matching requests (0: until cleared). Delay is waited first; then
// Drop closes the connection without an answer, Status answers that status,
// and with neither the request is answered normally after the delay.
//
// In faults.json, or POSTed to /_sim/faults:
//
//	[{"path": "/vnet/", "status": 503, "count": 2},
//	 {"method": "GET", "path": "/vrouter", "delay": "3s"},
//	 {"drop": true}]
//
// The counts of faults.json start again whenever the file's content changes.
type Fault struct {
	// Path is a prefix of the request paths the fault applies to ("" for all).
	Path string `json:"path,omitempty"`
	// Method restricts the fault to one method ("" for all).
	Method string   `json:"method,omitempty"`
	Status int      `json:"status,omitempty"`
	Drop   bool     `json:"drop,omitempty"`
	Delay  Duration `json:"delay,omitempty"`
	Count  int      `json:"count,omitempty"`

	used int
}

// Duration is a time.Duration written in JSON as "1.5s" or as seconds (1.5).
type Duration struct{ D time.Duration }

// MarshalJSON writes the duration as text ("1.5s").
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.D.String()) }

// UnmarshalJSON reads "1.5s" or 1.5 (seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		d.D = v
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return errors.New("a delay is a duration such as \"2s\" or a number of seconds")
	}
	d.D = time.Duration(f * float64(time.Second))
	return nil
}

func (f *Fault) matches(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, f.Path) && (f.Method == "" || strings.EqualFold(f.Method, r.Method))
}

func (f *Fault) validate() error {
	if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
		return fmt.Errorf("status %d is not an HTTP status", f.Status)
	}
	if f.Count < 0 || f.Delay.D < 0 {
		return errors.New("count and delay must not be negative")
	}
	return nil
}

// Inject adds a fault; faults are tried in the order they were added, before
// those of faults.json, and the first that matches applies.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.used = 0
	s.faults = append(s.faults, &f)
}

// ClearFaults removes the injected faults (not those of faults.json).
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// fileFaultState remembers how often each fault of faults.json applied,
// for the file's current content.
type fileFaultState struct {
	content string
	used    []int
}

// fault returns the fault that applies to r, counting it, or nil.
func (s *Server) fault(r *http.Request) (*Fault, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, "faults.json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var fromFile []Fault
	if len(strings.TrimSpace(string(data))) > 0 {
		if err := json.Unmarshal(data, &fromFile); err != nil {
			return nil, fmt.Errorf("faults.json: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.matches(r) {
			f.used++
			if f.Count > 0 && f.used >= f.Count {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
			c := *f
			return &c, nil
		}
	}
	if s.fileFaults.content != string(data) {
		s.fileFaults = fileFaultState{content: string(data), used: make([]int, len(fromFile))}
	}
	for i := range fromFile {
		f := &fromFile[i]
		if !f.matches(r) || (f.Count > 0 && s.fileFaults.used[i] >= f.Count) {
			continue
		}
		s.fileFaults.used[i]++
		return f, nil
	}
	return nil, nil
}

// control serves the /_sim/ API.
func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/_sim")
	writeJSON := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	switch {
	case path == "/health":
		_, _ = io.WriteString(w, "ok\n")
	case strings.HasPrefix(path, "/documents/"):
		name := strings.TrimPrefix(path, "/documents/")
		if !validName(name) {
			http.Error(w, "document names are vrouter, service, vnet-<id>, vm-<id>", http.StatusBadRequest)
			return
		}
		switch r.Method {
		case http.MethodPut:
			body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
			if err != nil || !json.Valid(body) {
				http.Error(w, "the body must be a JSON document", http.StatusBadRequest)
				return
			}
			s.SetDocument(name, body)
		case http.MethodDelete:
			s.RemoveDocument(name)
		default:
			http.Error(w, "PUT or DELETE", http.StatusMethodNotAllowed)
		}
	case path == "/faults":
		switch r.Method {
		case http.MethodPost:
			var f Fault
			if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
				http.Error(w, "the body must be a fault as JSON: "+err.Error(), http.StatusBadRequest)
				return
			}
			if err := f.validate(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			s.Inject(f)
		case http.MethodDelete:
			s.ClearFaults()
		default:
			http.Error(w, "POST or DELETE", http.StatusMethodNotAllowed)
		}
	case path == "/writes":
		writeJSON(s.Writes())
	case path == "/requests":
		writeJSON(s.Requests())
	case strings.HasPrefix(path, "/user-template/"):
		id, err := strconv.Atoi(strings.TrimPrefix(path, "/user-template/"))
		if err != nil {
			http.Error(w, "not a VM ID", http.StatusBadRequest)
			return
		}
		ut, err := s.UserTemplate(id)
		if err != nil || ut == nil {
			http.Error(w, fmt.Sprintf("no VM %d: %v", id, err), http.StatusNotFound)
			return
		}
		writeJSON(ut)
	case path == "/reset" && r.Method == http.MethodPost:
		s.Reset()
	default:
		http.Error(w, "unknown simulator control path", http.StatusNotFound)
	}
}

func validName(name string) bool {
	if name == "vrouter" || name == "service" {
		return true
	}
	for _, p := range []string{"vnet-", "vm-"} {
		if rest, ok := strings.CutPrefix(name, p); ok && reDigit.MatchString(rest) {
			return true
		}
	}
	return false
}
