// Package sim is a OneGate simulator for tests, the lab and debugging: an
// http.Handler that answers the paths, headers and JSON shapes of
// OpenNebula's onegate-server from fixture files, records user template
// updates and serves them back, lets a test change documents while it runs,
// and fails on demand.
//
// # Fixtures
//
// A directory of JSON files, re-read on every request (so a test in another
// namespace can change a document by writing a file; write a temporary file
// and rename it over the old one):
//
//	vrouter.json    {"VROUTER": {...}}  the router, as `onevrouter show --json`
//	vnet-<id>.json  {"VNET": {...}}     a network, as `onevnet show --json`
//	vm-<id>.json    {"VM": {...}}       a VM, as `onevm show --json` (TEMPLATE.CONTEXT.BACKEND
//	                                    and the NICs' MAC/NIC_ID/PARENT_ID/NETWORK_ID are used)
//	service.json    {"SERVICE": {...}}  the OneFlow service, as GET /service answers it
//	faults.json     [Fault, ...]        faults to inject (see Fault)
//
// As onegate-server does, the simulator serves a VM through its filter
// (NAME, ID, STATE, LCM_STATE, USER_TEMPLATE, the NICs' public keys), makes
// the repeated elements of vrouter and vnet documents arrays, and in an
// extended vnet document (extended=true) fills each lease of a VM that has a
// fixture with NIC_NAME, and for an alias PARENT, PARENT_NETWORK_ID and
// EXTERNAL, and, when the VM's context has BACKEND=YES, BACKEND=YES and a copy
// of every ONEGATE_* attribute of its current user template. Without
// extended=true those fields are removed.
//
// # Checks
//
// Every OneGate request must carry X-ONEGATE-TOKEN equal to the token
// (401 "Not authorized" otherwise, as the server does); the VM is the one
// X-ONEGATE-VMID names. /vnet/<id> is refused (400) unless the network is
// one the router could see through OneGate: a network of a router NIC, its
// parent, its reservations, or a network whose parent is one of those.
// /vms/<id> is refused unless the VM is this VM or one of the same router or
// service.
//
// # Control
//
// In process: SetDocument, RemoveDocument, Inject, ClearFaults, Writes,
// UserTemplate, Requests, Reset. Out of process, the same under the reserved
// prefix /_sim/ (no token needed, never faulted):
//
//	PUT    /_sim/documents/<name>   body: the document (name as in the fixtures, without .json)
//	DELETE /_sim/documents/<name>   the document is absent until reset
//	POST   /_sim/faults             body: a Fault as JSON
//	DELETE /_sim/faults             clear injected faults
//	GET    /_sim/writes             recorded user template updates (JSON)
//	GET    /_sim/user-template/<vm> the VM's current user template (JSON)
//	GET    /_sim/requests           requests seen (JSON, without the token)
//	POST   /_sim/reset              forget overrides, updates, faults and requests
package sim

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names of the OneGate protocol.
const (
	HeaderToken = "X-ONEGATE-TOKEN"
	HeaderVMID  = "X-ONEGATE-VMID"
)

// Server is the simulator. Build it with New.
type Server struct {
	// Log, when set, gets one line per OneGate request (never the token).
	Log *slog.Logger

	dir   string
	token string

	mu         sync.Mutex
	docs       map[string][]byte // overrides; nil value: removed
	template   map[int]map[string]string
	erased     map[int]map[string]bool
	writes     []Write
	requests   []*Request
	faults     []*Fault
	fileFaults fileFaultState
}

// Write is a recorded user template update.
type Write struct {
	VM   int               `json:"vm"`
	Type int               `json:"type"` // 1 update, 2 erase
	Data string            `json:"data"`
	Set  map[string]string `json:"set,omitempty"`
	At   time.Time         `json:"at"`
}

// Request is a request the simulator answered (the token is never kept).
type Request struct {
	Method  string `json:"method"`
	Path    string `json:"path"`
	Query   string `json:"query,omitempty"`
	VMID    string `json:"vmid"`
	TokenOK bool   `json:"token_ok"`
	Accept  string `json:"accept,omitempty"`
	Status  int    `json:"status"`
}

// maxRequests bounds the request log.
const maxRequests = 10000

// New returns a simulator serving the fixtures in dir and requiring token
// ("" accepts any request).
func New(dir, token string) *Server {
	return &Server{dir: dir, token: token}
}

// SetDocument replaces the document name ("vrouter", "vnet-3", "vm-7",
// "service") until RemoveDocument or Reset.
func (s *Server) SetDocument(name string, doc []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.docs == nil {
		s.docs = map[string][]byte{}
	}
	s.docs[name] = append([]byte{}, doc...)
}

// RemoveDocument makes the document name absent (even if its file exists)
// until Reset.
func (s *Server) RemoveDocument(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.docs == nil {
		s.docs = map[string][]byte{}
	}
	s.docs[name] = nil
}

// Writes returns the user template updates received, in order.
func (s *Server) Writes() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Write{}, s.writes...)
}

// Requests returns the requests answered so far (OneGate paths only).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = *r
	}
	return out
}

// UserTemplate returns the current user template of VM id: its fixture's
// with the recorded updates applied (nil when the VM has no fixture).
func (s *Server) UserTemplate(id int) (map[string]string, error) {
	vm, err := s.vm(id)
	if err != nil || vm == nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range obj(vm["USER_TEMPLATE"]) {
		out[k] = text(v)
	}
	return out, nil
}

// Reset forgets document overrides, recorded updates, faults and requests.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.docs, s.template, s.erased, s.writes, s.requests, s.faults = nil, nil, nil, nil, nil, nil
	s.fileFaults = fileFaultState{}
}

// ServeHTTP answers OneGate requests and the /_sim/ control API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.control(w, r)
		return
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, VMID: r.Header.Get(HeaderVMID), Accept: r.Header.Get("Accept")}
	req.TokenOK = s.token == "" || subtle.ConstantTimeCompare([]byte(r.Header.Get(HeaderToken)), []byte(s.token)) == 1
	// Recorded on arrival, so a test counting requests sees one whose
	// answer is still being delayed; the status is filled in at the end.
	s.mu.Lock()
	if len(s.requests) >= maxRequests {
		s.requests = s.requests[1:]
	}
	s.requests = append(s.requests, &req)
	s.mu.Unlock()
	start := time.Now()
	defer func() {
		s.mu.Lock()
		req.Status = rec.status
		s.mu.Unlock()
		if s.Log != nil {
			s.Log.Info("request", "method", req.Method, "path", req.Path, "query", req.Query, "vmid", req.VMID, "token_ok", req.TokenOK, "status", rec.status, "elapsed", time.Since(start))
		}
	}()
	f, err := s.fault(r)
	if err != nil {
		http.Error(rec, "simulator: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if f != nil {
		if f.Delay.D > 0 {
			t := time.NewTimer(f.Delay.D)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f.Drop {
			rec.status = 0
			panic(http.ErrAbortHandler) // the server closes the connection without an answer
		}
		if f.Status != 0 {
			reply(rec, f.Status, []byte(http.StatusText(f.Status)))
			return
		}
	}
	if !req.TokenOK {
		reply(rec, http.StatusUnauthorized, []byte("Not authorized"))
		return
	}
	status, body := s.answer(r)
	reply(rec, status, body)
}

func reply(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

var (
	reVnet  = regexp.MustCompile(`^/vnet/([^/]+)$`)
	reVMs   = regexp.MustCompile(`^/vms/([^/]+)$`)
	reDigit = regexp.MustCompile(`^[0-9]+$`)
)

// answer serves one authenticated OneGate request.
func (s *Server) answer(r *http.Request) (int, []byte) {
	self, _ := strconv.Atoi(strings.TrimSpace(r.Header.Get(HeaderVMID))) // as the server's to_i
	extended := strings.EqualFold(r.URL.Query().Get("extended"), "true")
	path := r.URL.Path
	var status int
	var body []byte
	var err error
	switch {
	case r.Method == http.MethodGet && path == "/vrouter":
		status, body, err = s.getVRouter()
	case r.Method == http.MethodGet && path == "/service":
		status, body, err = s.getDocument("service", http.StatusBadRequest, "Empty or invalid SERVICE_ID")
	case r.Method == http.MethodGet && path == "/vm":
		status, body, err = s.getVM(self)
	case r.Method == http.MethodPut && path == "/vm":
		status, body, err = s.putVM(r, self)
	case reVnet.MatchString(path) && r.Method == http.MethodGet:
		status, body, err = s.getVNet(reVnet.FindStringSubmatch(path)[1], extended)
	case reVMs.MatchString(path) && (r.Method == http.MethodGet || r.Method == http.MethodPut):
		raw := reVMs.FindStringSubmatch(path)[1]
		id, _ := strconv.Atoi(raw)
		if status, body, err = s.checkSibling(self, id); err == nil && status == 0 {
			if r.Method == http.MethodGet {
				status, body, err = s.getVM(id)
			} else {
				status, body, err = s.putVM(r, id)
			}
		}
	default:
		return http.StatusNotFound, []byte("Not found")
	}
	if err != nil {
		return http.StatusInternalServerError, []byte("simulator: " + err.Error())
	}
	return status, body
}

// load returns the document name: the override, else the fixture file (nil
// when absent).
func (s *Server) load(name string) (map[string]any, error) {
	s.mu.Lock()
	data, overridden := s.docs[name]
	s.mu.Unlock()
	if !overridden {
		var err error
		data, err = os.ReadFile(filepath.Join(s.dir, name+".json"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	if data == nil {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("fixture %s: %w", name, err)
	}
	return m, nil
}

func (s *Server) getDocument(name string, missing int, msg string) (int, []byte, error) {
	m, err := s.load(name)
	if err != nil || m == nil {
		return missing, []byte(msg), err
	}
	b, err := json.Marshal(m)
	return http.StatusOK, b, err
}

func (s *Server) getVRouter() (int, []byte, error) {
	m, err := s.load("vrouter")
	if err != nil || m == nil {
		return http.StatusBadRequest, []byte("Empty or invalid VROUTER_ID"), err
	}
	vr := obj(m["VROUTER"])
	tmpl := obj(vr["TEMPLATE"])
	if tmpl == nil {
		tmpl = map[string]any{}
	}
	tmpl["NIC"] = array(tmpl["NIC"])
	vms := obj(vr["VMS"])
	if vms == nil {
		vms = map[string]any{}
	}
	vms["ID"] = array(vms["ID"])
	out := map[string]any{"VROUTER": map[string]any{"NAME": vr["NAME"], "ID": vr["ID"], "VMS": vms, "TEMPLATE": tmpl}}
	b, err := json.Marshal(out)
	return http.StatusOK, b, err
}

// vm returns VM id's inner object with the recorded user template changes
// applied (nil when it has no fixture).
func (s *Server) vm(id int) (map[string]any, error) {
	m, err := s.load("vm-" + strconv.Itoa(id))
	if err != nil || m == nil {
		return nil, err
	}
	vm := obj(m["VM"])
	if vm == nil {
		return nil, fmt.Errorf("fixture vm-%d has no VM object", id)
	}
	ut := obj(vm["USER_TEMPLATE"])
	if ut == nil {
		ut = map[string]any{}
	}
	s.mu.Lock()
	for k, v := range s.template[id] {
		ut[k] = v
	}
	for k := range s.erased[id] {
		delete(ut, k)
	}
	s.mu.Unlock()
	vm["USER_TEMPLATE"] = ut
	return vm, nil
}

// The NIC attributes onegate-server shows (NIC_VALID_KEYS).
var nicKeys = []string{"IP", "IP6_LINK", "IP6_SITE", "IP6_GLOBAL", "NETWORK", "MAC", "NAME", "PARENT", "EXTERNAL", "EXTERNAL_IP"}

func (s *Server) getVM(id int) (int, []byte, error) {
	vm, err := s.vm(id)
	if err != nil || vm == nil {
		return http.StatusNotFound, []byte(fmt.Sprintf("[VirtualMachineInfo] Error getting virtual machine [%d].", id)), err
	}
	ut := obj(vm["USER_TEMPLATE"])
	delete(ut, "SCHED_MESSAGE")
	tmpl := obj(vm["TEMPLATE"])
	filter := func(v any) []any {
		out := []any{}
		for _, e := range array(v) {
			n := map[string]any{}
			for _, k := range nicKeys {
				if x, ok := obj(e)[k]; ok {
					n[k] = x
				}
			}
			out = append(out, n)
		}
		return out
	}
	out := map[string]any{"VM": map[string]any{
		"NAME": vm["NAME"], "ID": vm["ID"], "STATE": vm["STATE"], "LCM_STATE": vm["LCM_STATE"],
		"USER_TEMPLATE": ut,
		"TEMPLATE":      map[string]any{"NIC": filter(tmpl["NIC"]), "NIC_ALIAS": filter(tmpl["NIC_ALIAS"])},
	}}
	b, err := json.Marshal(out)
	return http.StatusOK, b, err
}

// checkSibling refuses /vms/<id> for a VM outside this VM's router or service.
func (s *Server) checkSibling(self, id int) (int, []byte, error) {
	if id == self {
		return 0, nil, nil
	}
	vr, err := s.load("vrouter")
	if err != nil {
		return 0, nil, err
	}
	svc, err := s.load("service")
	if err != nil {
		return 0, nil, err
	}
	if vr == nil && svc == nil {
		return http.StatusBadRequest, []byte("This VM does not belong to any Virtual Router or Service, so it cannot retrieve information from other VMs"), nil
	}
	members := map[string]bool{}
	for _, v := range array(obj(obj(vr["VROUTER"])["VMS"])["ID"]) {
		members[text(v)] = true
	}
	for _, role := range array(obj(svc["SERVICE"])["roles"]) {
		for _, n := range array(obj(role)["nodes"]) {
			members[text(obj(n)["deploy_id"])] = true
			members[text(obj(obj(obj(n)["vm_info"])["VM"])["ID"])] = true
		}
	}
	if !members[strconv.Itoa(self)] || !members[strconv.Itoa(id)] {
		return http.StatusBadRequest, []byte(fmt.Sprintf("Service or Virtual Router does not contain VM %d.", id)), nil
	}
	return 0, nil, nil
}

func (s *Server) getVNet(raw string, extended bool) (int, []byte, error) {
	if !reDigit.MatchString(raw) {
		return http.StatusBadRequest, []byte(fmt.Sprintf("Invalid id format (ID: %s). ID must be an integer.", raw)), nil
	}
	id, _ := strconv.Atoi(raw)
	vr, err := s.load("vrouter")
	if err != nil {
		return 0, nil, err
	}
	if vr == nil {
		return http.StatusBadRequest, []byte("Virtual networks information can only be retrieved from Virtual Routers."), nil
	}
	m, err := s.load("vnet-" + raw)
	if err != nil {
		return 0, nil, err
	}
	if m == nil {
		return http.StatusNotFound, []byte(fmt.Sprintf("Virtual network %d not found", id)), nil
	}
	vnet := obj(m["VNET"])
	if vnet == nil {
		// A malformed fixture is served as it is: tests use it to see
		// what a client makes of a garbled document.
		b, err := json.Marshal(m)
		return http.StatusOK, b, err
	}
	if ok, err := s.visible(vr, vnet, id); err != nil || !ok {
		return http.StatusBadRequest, []byte(fmt.Sprintf("Virtual Network %d cannot be retrieved from Virtual router %s.", id, text(obj(vr["VROUTER"])["ID"]))), err
	}
	vms, err := s.vmFixtures()
	if err != nil {
		return 0, nil, err
	}
	for _, ar := range normaliseARs(vnet) {
		for _, l := range array(obj(obj(ar)["LEASES"])["LEASE"]) {
			if err := s.extend(obj(l), extended, vms); err != nil {
				return 0, nil, err
			}
		}
	}
	b, err := json.Marshal(map[string]any{"VNET": vnet})
	return http.StatusOK, b, err
}

// vmFixtures lists the VMs that have a document (a file or an override),
// so that extending a network of thousands of leases does not look for
// thousands of missing files.
func (s *Server) vmFixtures() (map[int]bool, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	out := map[int]bool{}
	for _, e := range ents {
		if rest, ok := strings.CutPrefix(e.Name(), "vm-"); ok {
			if id, err := strconv.Atoi(strings.TrimSuffix(rest, ".json")); err == nil && strings.HasSuffix(rest, ".json") {
				out[id] = true
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, doc := range s.docs {
		if rest, ok := strings.CutPrefix(name, "vm-"); ok {
			if id, err := strconv.Atoi(rest); err == nil {
				out[id] = doc != nil
			}
		}
	}
	return out, nil
}

// visible is onegate-server's check_vnet_in_vrouter.
func (s *Server) visible(vr, vnet map[string]any, id int) (bool, error) {
	nics := array(obj(obj(vr["VROUTER"])["TEMPLATE"])["NIC"])
	for _, nic := range nics {
		// A network of the router's own NICs: no need to read the others.
		if text(obj(nic)["NETWORK_ID"]) == strconv.Itoa(id) {
			return true, nil
		}
	}
	valid := map[string]bool{}
	for _, nic := range nics {
		nid := text(obj(nic)["NETWORK_ID"])
		valid[nid] = true
		m, err := s.load("vnet-" + nid)
		if err != nil {
			return false, err
		}
		nv := obj(m["VNET"])
		if p := text(nv["PARENT_NETWORK_ID"]); p != "" {
			valid[p] = true
		}
		for _, ar := range array(obj(nv["AR_POOL"])["AR"]) {
			for _, l := range array(obj(obj(ar)["LEASES"])["LEASE"]) {
				if c := text(obj(l)["VNET"]); c != "" {
					valid[c] = true
				}
			}
		}
	}
	return valid[strconv.Itoa(id)] || valid[text(vnet["PARENT_NETWORK_ID"])], nil
}

// normaliseARs makes AR_POOL.AR and each AR's LEASES.LEASE arrays, as the
// server does, and returns the ARs.
func normaliseARs(vnet map[string]any) []any {
	pool := obj(vnet["AR_POOL"])
	if pool == nil {
		pool = map[string]any{}
		vnet["AR_POOL"] = pool
	}
	ars := array(pool["AR"])
	pool["AR"] = ars
	for _, ar := range ars {
		a := obj(ar)
		if a == nil {
			continue
		}
		leases := obj(a["LEASES"])
		if leases == nil {
			leases = map[string]any{}
			a["LEASES"] = leases
		}
		leases["LEASE"] = array(leases["LEASE"])
	}
	return ars
}

// extendedKeys are the lease fields only an extended document carries.
var extendedKeys = []string{"NIC_NAME", "PARENT", "PARENT_NETWORK_ID", "EXTERNAL", "BACKEND"}

// extend fills (extended) or strips (not extended) a lease's extended data.
// Leases of VMs without a fixture keep what their vnet fixture says.
func (s *Server) extend(lease map[string]any, extended bool, vms map[int]bool) error {
	if lease == nil {
		return nil
	}
	if !extended {
		for _, k := range extendedKeys {
			delete(lease, k)
		}
		for k := range lease {
			if strings.HasPrefix(k, "ONEGATE_") {
				delete(lease, k)
			}
		}
		return nil
	}
	vmID, err := strconv.Atoi(text(lease["VM"]))
	if err != nil || vmID < 0 || !vms[vmID] {
		return nil
	}
	vm, err := s.vm(vmID)
	if err != nil || vm == nil {
		return err
	}
	tmpl := obj(vm["TEMPLATE"])
	mac := strings.ToLower(text(lease["MAC"]))
	byMAC := func(list any) map[string]any {
		for _, n := range array(list) {
			if strings.ToLower(text(obj(n)["MAC"])) == mac && mac != "" {
				return obj(n)
			}
		}
		return nil
	}
	if nic := byMAC(tmpl["NIC"]); nic != nil {
		lease["NIC_NAME"] = nic["NAME"]
	} else if alias := byMAC(tmpl["NIC_ALIAS"]); alias != nil {
		lease["NIC_NAME"] = alias["NAME"]
		lease["PARENT"] = alias["PARENT"]
		for _, n := range array(tmpl["NIC"]) {
			if text(obj(n)["NIC_ID"]) == text(alias["PARENT_ID"]) {
				lease["PARENT_NETWORK_ID"] = text(obj(n)["NETWORK_ID"])
			}
		}
		lease["EXTERNAL"] = strings.EqualFold(text(alias["EXTERNAL"]), "yes")
	}
	delete(lease, "BACKEND")
	for k := range lease {
		if strings.HasPrefix(k, "ONEGATE_") {
			delete(lease, k)
		}
	}
	if strings.EqualFold(text(obj(tmpl["CONTEXT"])["BACKEND"]), "yes") {
		lease["BACKEND"] = "YES"
		for k, v := range obj(vm["USER_TEMPLATE"]) {
			if strings.HasPrefix(k, "ONEGATE_") {
				lease[k] = text(v)
			}
		}
	}
	return nil
}

// Attributes onegate-server refuses to change (RESTRICTED_ATTRS).
var restricted = map[string]bool{"SCHED_REQUIREMENTS": true, "SERVICE_ID": true, "ROLE_NAME": true}

// putVM applies a user template update the way onegate-server and
// OpenNebula's template parser would: names are upper-cased; a value the
// server's quoting would break (empty, or with '"', '\', '[', ']' or ',') is a
// 500, as the parse error it causes there.
func (s *Server) putVM(r *http.Request, id int) (int, []byte, error) {
	if vm, err := s.vm(id); err != nil || vm == nil {
		return http.StatusNotFound, []byte(fmt.Sprintf("[VirtualMachineInfo] Error getting virtual machine [%d].", id)), err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return http.StatusBadRequest, []byte("reading the body"), nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := r.ParseForm(); err != nil {
		return http.StatusBadRequest, []byte(err.Error()), nil
	}
	data := r.PostForm.Get("data")
	if _, ok := r.PostForm["data"]; !ok {
		data = string(body)
	}
	typ := 1
	if t := r.PostForm.Get("type"); t != "" {
		typ, _ = strconv.Atoi(t)
	}
	w := Write{VM: id, Type: typ, Data: data, At: time.Now()}
	if typ == 2 {
		key := strings.ToUpper(strings.TrimSpace(data))
		if restricted[key] {
			return http.StatusForbidden, []byte(fmt.Sprintf("Attribute (%s) cannot be deleted", key)), nil
		}
		ut, err := s.UserTemplate(id)
		if err != nil {
			return 0, nil, err
		}
		if _, ok := ut[key]; !ok {
			return http.StatusInternalServerError, []byte("attribute not found"), nil
		}
		s.mu.Lock()
		s.erase(id, key)
		s.writes = append(s.writes, w)
		s.mu.Unlock()
		return http.StatusOK, nil, nil
	}
	set := map[string]string{}
	for _, line := range strings.Split(data, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.ToUpper(strings.TrimSpace(k))
		if !ok || k == "" {
			return http.StatusInternalServerError, []byte("syntax error, unexpected end of input in user template"), nil
		}
		if restricted[k] {
			return http.StatusForbidden, []byte(fmt.Sprintf("Attribute (%s) cannot be modified", k)), nil
		}
		if v == "" || strings.ContainsAny(v, "\"\\[],") {
			return http.StatusInternalServerError, []byte(fmt.Sprintf("syntax error in user template attribute %s", k)), nil
		}
		set[k] = v
	}
	w.Set = set
	s.mu.Lock()
	for k, v := range set {
		if s.template == nil {
			s.template = map[int]map[string]string{}
		}
		if s.template[id] == nil {
			s.template[id] = map[string]string{}
		}
		s.template[id][k] = v
		if s.erased[id] != nil {
			delete(s.erased[id], k)
		}
	}
	s.writes = append(s.writes, w)
	s.mu.Unlock()
	return http.StatusOK, nil, nil
}

// erase records the removal of key from VM id's user template (s.mu held).
func (s *Server) erase(id int, key string) {
	delete(s.template[id], key)
	if s.erased == nil {
		s.erased = map[int]map[string]bool{}
	}
	if s.erased[id] == nil {
		s.erased[id] = map[string]bool{}
	}
	s.erased[id][key] = true
}

// obj returns v as an object, nil otherwise.
func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// array returns v as the array onegate-server makes of it: nil → [], a
// single value → [v].
func array(v any) []any {
	switch t := v.(type) {
	case nil:
		return []any{}
	case []any:
		return t
	}
	return []any{v}
}

// text returns a scalar as text ("" for objects, arrays and null).
func text(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	}
	return ""
}
