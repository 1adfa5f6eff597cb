package sim_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

const token = "t0ken-sim-test"

// fixtures copies the standard fixtures to a directory the test may change.
func fixtures(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := sim.CopyFixtures(sim.Fixtures(), dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

type env struct {
	t   *testing.T
	dir string
	sim *sim.Server
	srv *httptest.Server
}

func start(t *testing.T) *env {
	dir := fixtures(t)
	s := sim.New(dir, token)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &env{t: t, dir: dir, sim: s, srv: srv}
}

// call sends a OneGate request as VM 10 with the token and returns status and body.
func (e *env) call(method, path, body string, headers ...string) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set(sim.HeaderToken, token)
	req.Header.Set(sim.HeaderVMID, "10")
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) getJSON(path string) map[string]any {
	e.t.Helper()
	status, body := e.call("GET", path, "")
	if status != 200 {
		e.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		e.t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return m
}

// lease finds the lease with ip in a vnet answer.
func lease(t *testing.T, doc map[string]any, ip string) map[string]any {
	t.Helper()
	for _, ar := range doc["VNET"].(map[string]any)["AR_POOL"].(map[string]any)["AR"].([]any) {
		for _, l := range ar.(map[string]any)["LEASES"].(map[string]any)["LEASE"].([]any) {
			if l.(map[string]any)["IP"] == ip {
				return l.(map[string]any)
			}
		}
	}
	t.Fatalf("no lease %s", ip)
	return nil
}

func TestToken(t *testing.T) {
	e := start(t)
	for name, h := range map[string][]string{
		"missing": {sim.HeaderToken, ""},
		"wrong":   {sim.HeaderToken, "nope"},
	} {
		if status, body := e.call("GET", "/vm", "", h...); status != 401 || body != "Not authorized" {
			t.Errorf("%s token: %d %q, want 401 Not authorized", name, status, body)
		}
	}
	if status, _ := e.call("GET", "/vm", ""); status != 200 {
		t.Errorf("right token: %d", status)
	}
	reqs := e.sim.Requests()
	if len(reqs) != 3 || reqs[0].TokenOK || !reqs[2].TokenOK || reqs[2].VMID != "10" {
		t.Errorf("requests: %+v", reqs)
	}
	b, _ := json.Marshal(reqs)
	if strings.Contains(string(b), token) {
		t.Error("the request log holds the token")
	}
}

func TestShapes(t *testing.T) {
	e := start(t)
	vm := e.getJSON("/vm")["VM"].(map[string]any)
	if vm["ID"] != "10" || vm["NAME"] != "vr-lab-0" {
		t.Errorf("GET /vm is VM %v %v, want the X-ONEGATE-VMID one", vm["ID"], vm["NAME"])
	}
	if _, ok := vm["USER_TEMPLATE"].(map[string]any)["SCHED_MESSAGE"]; ok {
		t.Error("SCHED_MESSAGE is served")
	}
	tmpl := vm["TEMPLATE"].(map[string]any)
	if _, ok := tmpl["CONTEXT"]; ok {
		t.Error("the VM's CONTEXT is served")
	}
	nic := tmpl["NIC"].([]any)[0].(map[string]any)
	if _, ok := nic["NETWORK_ID"]; ok || nic["MAC"] != "02:00:cb:00:71:02" {
		t.Errorf("NIC not filtered as onegate-server does: %v", nic)
	}
	// A single NIC_ALIAS object in the fixture is an array in the answer.
	status, body := e.call("GET", "/vm", "", sim.HeaderVMID, "20")
	var vm20 struct {
		VM struct {
			TEMPLATE struct{ NIC_ALIAS []map[string]any }
		}
	}
	if err := json.Unmarshal([]byte(body), &vm20); status != 200 || err != nil || len(vm20.VM.TEMPLATE.NIC_ALIAS) != 1 {
		t.Errorf("GET /vm as VM 20: %d %v %s", status, err, body)
	}
	vr := e.getJSON("/vrouter?extended=true")["VROUTER"].(map[string]any)
	if diff := cmp.Diff([]any{"10", "11"}, vr["VMS"].(map[string]any)["ID"]); diff != "" {
		t.Errorf("VMS.ID: %s", diff)
	}
	// A single AR and LEASE object are arrays in the answer; the
	// reservation's parent is under VNET.
	res := e.getJSON("/vnet/2?extended=true")["VNET"].(map[string]any)
	if res["PARENT_NETWORK_ID"] != "0" {
		t.Errorf("PARENT_NETWORK_ID %v", res["PARENT_NETWORK_ID"])
	}
	if ars := res["AR_POOL"].(map[string]any)["AR"].([]any); len(ars) != 1 || len(ars[0].(map[string]any)["LEASES"].(map[string]any)["LEASE"].([]any)) != 1 {
		t.Errorf("AR_POOL: %v", res["AR_POOL"])
	}
	if e.getJSON("/service")["SERVICE"].(map[string]any)["id"] != "7" {
		t.Error("service id")
	}
	for path, want := range map[string]int{
		"/vnet/x":  400, // not an integer
		"/vnet/9":  404, // no such network
		"/vms/99":  400, // not in the router or service
		"/vms/21":  200, // in the service
		"/nothing": 404,
	} {
		if status, body := e.call("GET", path, ""); status != want {
			t.Errorf("GET %s: %d %s, want %d", path, status, body, want)
		}
	}
}

func TestExtendedLeases(t *testing.T) {
	e := start(t)
	pub := e.getJSON("/vnet/0?extended=true")
	alias := lease(t, pub, "203.0.113.20")
	want := map[string]any{"IP": "203.0.113.20", "MAC": "02:00:cb:00:71:14", "VM": "20", "NIC_NAME": "NIC0_ALIAS1", "PARENT": "NIC0", "PARENT_NETWORK_ID": "1", "EXTERNAL": true}
	if diff := cmp.Diff(want, alias); diff != "" {
		t.Errorf("EXTERNAL alias lease (-want +got):\n%s", diff)
	}
	priv := e.getJSON("/vnet/1?extended=true")
	backend := lease(t, priv, "10.0.1.21")
	want = map[string]any{
		"IP": "10.0.1.21", "MAC": "02:00:0a:00:01:15", "VM": "21", "NIC_NAME": "NIC0", "BACKEND": "YES",
		"ONEGATE_LB0_IP": "<ETH0_EP0>", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "10.0.1.21",
		"ONEGATE_LB0_SERVER_PORT": "8080", "ONEGATE_LB0_SERVER_WEIGHT": "2",
	}
	if diff := cmp.Diff(want, backend); diff != "" {
		t.Errorf("BACKEND lease (-want +got):\n%s", diff)
	}
	if l := lease(t, priv, "10.0.1.20"); l["BACKEND"] != nil || l["NIC_NAME"] != "NIC0" {
		t.Errorf("a VM without BACKEND=YES: %v", l)
	}
	if l := lease(t, priv, "10.0.1.30"); l["NIC_NAME"] != "NIC0" {
		t.Errorf("a lease of a VM without fixture is not served as written: %v", l)
	}
	// Without extended=true, no extended data.
	plain := e.getJSON("/vnet/1")
	for _, ip := range []string{"10.0.1.21", "10.0.1.30"} {
		l := lease(t, plain, ip)
		for k := range l {
			if k == "BACKEND" || k == "NIC_NAME" || strings.HasPrefix(k, "ONEGATE_") {
				t.Errorf("non-extended lease %s has %s", ip, k)
			}
		}
	}
}

func TestUpdatesRecordedAndServed(t *testing.T) {
	e := start(t)
	form := url.Values{"type": {"1"}, "data": {"ONEGATE_LB0_SERVER_PORT=9090\nlower_case=x"}}.Encode()
	if status, body := e.call("PUT", "/vms/21", form); status != 200 {
		t.Fatalf("PUT /vms/21: %d %s", status, body)
	}
	if status, body := e.call("PUT", "/vm", url.Values{"data": {"ONEGATE_VNF_WG_SERVER=c2VydmVyCg=="}}.Encode()); status != 200 {
		t.Fatalf("PUT /vm: %d %s", status, body)
	}
	w := e.sim.Writes()
	if len(w) != 2 || w[0].VM != 21 || w[1].VM != 10 || w[0].Set["LOWER_CASE"] != "x" || w[1].Set["ONEGATE_VNF_WG_SERVER"] != "c2VydmVyCg==" {
		t.Errorf("writes: %+v", w)
	}
	ut := e.getJSON("/vms/21")["VM"].(map[string]any)["USER_TEMPLATE"].(map[string]any)
	if ut["ONEGATE_LB0_SERVER_PORT"] != "9090" || ut["ONEGATE_LB0_PORT"] != "80" {
		t.Errorf("update not merged into the vm document: %v", ut)
	}
	// ... and copied onto the backend's lease.
	if l := lease(t, e.getJSON("/vnet/1?extended=true"), "10.0.1.21"); l["ONEGATE_LB0_SERVER_PORT"] != "9090" {
		t.Errorf("lease not updated: %v", l)
	}
	// Erase: the attribute goes from the VM and the lease; erasing it
	// again is the server's 500 "attribute not found".
	if status, body := e.call("PUT", "/vms/21", "type=2&data=ONEGATE_LB0_SERVER_WEIGHT"); status != 200 {
		t.Fatalf("erase: %d %s", status, body)
	}
	if l := lease(t, e.getJSON("/vnet/1?extended=true"), "10.0.1.21"); l["ONEGATE_LB0_SERVER_WEIGHT"] != nil {
		t.Errorf("erased attribute still on the lease: %v", l)
	}
	if status, body := e.call("PUT", "/vms/21", "type=2&data=ONEGATE_LB0_SERVER_WEIGHT"); status != 500 || body != "attribute not found" {
		t.Errorf("second erase: %d %q", status, body)
	}
	// What the server's quoting would break, and restricted attributes.
	for data, want := range map[string]int{"A=x,y": 500, "A=": 500, "A=\"q\"": 500, "SERVICE_ID=8": 403, "NOEQUALS": 500} {
		if status, _ := e.call("PUT", "/vm", url.Values{"data": {data}}.Encode()); status != want {
			t.Errorf("PUT data %q: %d, want %d", data, status, want)
		}
	}
	if status, _ := e.call("PUT", "/vms/99", "data=A%3Db"); status != 400 {
		t.Errorf("PUT to a VM outside the router: %d", status)
	}
}

func TestDocumentChangesWhileRunning(t *testing.T) {
	e := start(t)
	// Through the fixture directory (another process, another namespace).
	doc := `{"VROUTER": {"ID": "3", "NAME": "renamed", "VMS": {"ID": "10"}, "TEMPLATE": {"NIC": {"NETWORK_ID": "1"}}}}`
	tmp := filepath.Join(e.dir, ".vrouter.json.tmp")
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.dir, "vrouter.json")); err != nil {
		t.Fatal(err)
	}
	vr := e.getJSON("/vrouter")["VROUTER"].(map[string]any)
	if vr["NAME"] != "renamed" || len(vr["TEMPLATE"].(map[string]any)["NIC"].([]any)) != 1 {
		t.Errorf("file change not served: %v", vr)
	}
	// Through the Go API, which wins over the file.
	e.sim.SetDocument("vrouter", []byte(`{"VROUTER": {"ID": "3", "NAME": "in-process", "VMS": {}, "TEMPLATE": {}}}`))
	if vr := e.getJSON("/vrouter")["VROUTER"].(map[string]any); vr["NAME"] != "in-process" {
		t.Errorf("SetDocument not served: %v", vr)
	}
	e.sim.RemoveDocument("vrouter")
	if status, _ := e.call("GET", "/vrouter", ""); status != 400 {
		t.Errorf("removed vrouter: %d, want 400", status)
	}
	// Through the control API.
	put, _ := http.NewRequest("PUT", e.srv.URL+"/_sim/documents/vnet-1", strings.NewReader(`{"VNET": {"ID": "1", "NAME": "via-control", "AR_POOL": {}}}`))
	resp, err := http.DefaultClient.Do(put)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("control PUT: %v %v", err, resp)
	}
	resp.Body.Close()
	e.sim.SetDocument("vrouter", []byte(`{"VROUTER": {"ID": "3", "VMS": {"ID": "10"}, "TEMPLATE": {"NIC": {"NETWORK_ID": "1"}}}}`))
	if v := e.getJSON("/vnet/1")["VNET"].(map[string]any); v["NAME"] != "via-control" {
		t.Errorf("control document not served: %v", v)
	}
	// Reset goes back to the files.
	e.sim.Reset()
	if vr := e.getJSON("/vrouter")["VROUTER"].(map[string]any); vr["NAME"] != "renamed" {
		t.Errorf("after Reset: %v", vr)
	}
}

func TestFaults(t *testing.T) {
	e := start(t)
	// The next two /vnet/ requests fail with 503, then it answers again.
	e.sim.Inject(sim.Fault{Path: "/vnet/", Status: 503, Count: 2})
	var got []int
	for i := 0; i < 3; i++ {
		status, _ := e.call("GET", "/vnet/0", "")
		got = append(got, status)
	}
	if status, _ := e.call("GET", "/vrouter", ""); status != 200 {
		t.Errorf("a fault for /vnet/ hit /vrouter: %d", status)
	}
	if diff := cmp.Diff([]int{503, 503, 200}, got); diff != "" {
		t.Errorf("Count 2: %s", diff)
	}
	// Until cleared.
	e.sim.Inject(sim.Fault{Status: 500})
	for i := 0; i < 3; i++ {
		if status, _ := e.call("GET", "/vm", ""); status != 500 {
			t.Errorf("until cleared: %d", status)
		}
	}
	e.sim.ClearFaults()
	if status, _ := e.call("GET", "/vm", ""); status != 200 {
		t.Errorf("after ClearFaults: %d", status)
	}
	// A dropped connection (until cleared: Go's transport retries a GET
	// once when a kept-alive connection closes without an answer).
	e.sim.Inject(sim.Fault{Drop: true})
	req, _ := http.NewRequest("GET", e.srv.URL+"/vm", nil)
	if resp, err := e.srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("dropped connection answered %d", resp.StatusCode)
	}
	e.sim.ClearFaults()
	// A delay longer than the client waits.
	e.sim.Inject(sim.Fault{Delay: sim.Duration{D: 5 * time.Second}, Count: 1})
	c := &http.Client{Timeout: 100 * time.Millisecond}
	req, _ = http.NewRequest("GET", e.srv.URL+"/vm", nil)
	var ne interface{ Timeout() bool }
	if _, err := c.Do(req); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("delayed answer: %v, want a client timeout", err)
	}
	// Faults from the fixture directory, counted per file content.
	if err := os.WriteFile(filepath.Join(e.dir, "faults.json"), []byte(`[{"method": "GET", "path": "/service", "status": 502, "count": 1}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	got = nil
	for i := 0; i < 2; i++ {
		status, _ := e.call("GET", "/service", "")
		got = append(got, status)
	}
	if diff := cmp.Diff([]int{502, 200}, got); diff != "" {
		t.Errorf("faults.json: %s", diff)
	}
	// Faults from the control API.
	resp, err := http.Post(e.srv.URL+"/_sim/faults", "application/json", strings.NewReader(`{"path": "/vrouter", "status": 504, "delay": 0.01}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("control fault: %v %v", err, resp)
	}
	resp.Body.Close()
	if status, _ := e.call("GET", "/vrouter", ""); status != 504 {
		t.Errorf("control fault: %d", status)
	}
	del, _ := http.NewRequest("DELETE", e.srv.URL+"/_sim/faults", nil)
	if resp, err := http.DefaultClient.Do(del); err == nil {
		resp.Body.Close()
	}
	if status, _ := e.call("GET", "/vrouter", ""); status != 200 {
		t.Errorf("after DELETE /_sim/faults: %d", status)
	}
	if resp, err := http.Post(e.srv.URL+"/_sim/faults", "application/json", strings.NewReader(`{"status": 42}`)); err != nil || resp.StatusCode != 400 {
		t.Errorf("invalid fault accepted: %v %v", err, resp)
	}
}

// A VM whose document exists only as an override (SetDocument) still
// extends its leases; one removed (RemoveDocument) no longer does.
func TestExtendedLeaseOfOverriddenVM(t *testing.T) {
	s := sim.New(t.TempDir(), "")
	s.SetDocument("vrouter", []byte(`{"VROUTER": {"ID": "3", "VMS": {"ID": "10"}, "TEMPLATE": {"NIC": {"NIC_ID": "0", "NETWORK_ID": "0"}}}}`))
	s.SetDocument("vnet-0", []byte(`{"VNET": {"ID": "0", "AR_POOL": {"AR": {"AR_ID": "0", "LEASES": {"LEASE": {"IP": "203.0.113.77", "MAC": "02:00:cb:00:71:4d", "VM": "77"}}}}}}`))
	s.SetDocument("vm-77", []byte(`{"VM": {"ID": "77", "TEMPLATE": {"NIC": {"NIC_ID": "0", "NAME": "NIC0", "NETWORK_ID": "1", "MAC": "02:00:0a:00:01:4d"},
		"NIC_ALIAS": {"NAME": "NIC0_ALIAS1", "PARENT": "NIC0", "PARENT_ID": "0", "EXTERNAL": "YES", "MAC": "02:00:cb:00:71:4d"}}}}`))
	get := func() string {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/vnet/0?extended=true", nil)
		req.Header.Set(sim.HeaderVMID, "10")
		s.ServeHTTP(rec, req)
		return rec.Body.String()
	}
	if out := get(); !strings.Contains(out, `"EXTERNAL":true`) || !strings.Contains(out, `"PARENT_NETWORK_ID":"1"`) {
		t.Fatalf("override not used: %s", out)
	}
	s.RemoveDocument("vm-77")
	if out := get(); strings.Contains(out, "EXTERNAL") {
		t.Fatalf("removed VM still extended: %s", out)
	}
}
