package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/hypercx/vrouter/tests/lab"
)

// control GETs a /_sim/ path of the simulator from h (any lab host that
// reaches it; busybox wget, so nothing else is needed) and decodes the JSON.
func (p *Process) control(h lab.Host, path string, v any) error {
	out, err := lab.Run(context.Background(), h, "busybox", "wget", "-q", "-O", "-", p.URL+"/_sim"+path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}

// UserTemplate is VM id's current user template, read from h.
func (p *Process) UserTemplate(h lab.Host, id int) (map[string]string, error) {
	var ut map[string]string
	err := p.control(h, "/user-template/"+strconv.Itoa(id), &ut)
	return ut, err
}

// Writes are the user template updates recorded so far, read from h.
func (p *Process) Writes(h lab.Host) ([]Write, error) {
	var w []Write
	err := p.control(h, "/writes", &w)
	return w, err
}
