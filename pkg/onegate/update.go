package onegate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Self names this VM in UpdateVM and EraseVM (PUT /vm rather than /vms/<id>).
const Self = -1

// maxValue bounds one attribute value (a base64 WireGuard configuration is
// a few KB).
const maxValue = 64 << 10

// CheckAttribute reports whether key=value can be stored in a user template
// through OneGate unchanged. OneGate rewrites the update into OpenNebula's
// template syntax by quoting values, so a newline would start another
// attribute and '"', '\', '[', ']' or ',' would break or change the quoting;
// such values must be encoded (base64, for instance) by the caller. The error
// names the key, never the value (values may be keys or passwords).
func CheckAttribute(key, value string) error {
	if !validKey(key) {
		return fmt.Errorf("user template attribute %q: the name must be letters, digits and '_', not starting with a digit", key)
	}
	switch {
	case value == "":
		return fmt.Errorf("user template attribute %s: empty value (use EraseVM to remove an attribute)", key)
	case len(value) > maxValue:
		return fmt.Errorf("user template attribute %s: value longer than %d bytes", key, maxValue)
	case !utf8.ValidString(value):
		return fmt.Errorf("user template attribute %s: value is not valid UTF-8", key)
	}
	for i, r := range value {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(`"\[],`, r) {
			return fmt.Errorf("user template attribute %s: value has %s at byte %d, which OneGate cannot store (encode the value, e.g. in base64)", key, describeRune(r), i)
		}
	}
	return nil
}

func describeRune(r rune) string {
	switch {
	case r == '\n':
		return "a newline"
	case r < 0x20 || r == 0x7f:
		return fmt.Sprintf("control character %U", r)
	}
	return fmt.Sprintf("%q", r)
}

func validKey(k string) bool {
	if k == "" || len(k) > 128 || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// UpdateVM merges attrs into the user template of VM id (Self for this VM):
// PUT /vm or /vms/<id> with type=1. Every attribute is checked with
// CheckAttribute first; nothing is sent if one is invalid. Updates are
// idempotent, so they are retried like reads.
func (c *Client) UpdateVM(ctx context.Context, id int, attrs map[string]string) error {
	if len(attrs) == 0 {
		return nil
	}
	var data strings.Builder
	for _, k := range sortedKeys(attrs) {
		if err := CheckAttribute(k, attrs[k]); err != nil {
			return fmt.Errorf("updating VM %s: %w", vmName(id), err)
		}
		data.WriteString(k + "=" + attrs[k] + "\n")
	}
	path, err := vmPath(id)
	if err != nil {
		return err
	}
	form := url.Values{"type": {"1"}, "data": {strings.TrimSuffix(data.String(), "\n")}}
	if _, err := c.do(ctx, http.MethodPut, path, nil, form, nil); err != nil {
		return fmt.Errorf("updating VM %s (%d attributes): %w", vmName(id), len(attrs), err)
	}
	c.log.Debug("OneGate user template updated", "vm", vmName(id), "attributes", strings.Join(sortedKeys(attrs), ","))
	return nil
}

// EraseVM removes attributes from the user template of VM id (Self for this
// VM): one PUT with type=2 per key. An attribute that is not there is not an
// error.
func (c *Client) EraseVM(ctx context.Context, id int, keys ...string) error {
	path, err := vmPath(id)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if !validKey(k) {
			return fmt.Errorf("erasing %q from VM %s: not an attribute name", k, vmName(id))
		}
	}
	for _, k := range keys {
		form := url.Values{"type": {"2"}, "data": {k}}
		// OneGate answers 500 "attribute not found" for a missing one.
		notFound := func(he *HTTPError) bool {
			return he.Status == http.StatusInternalServerError && strings.Contains(he.Message, "attribute not found")
		}
		if _, err := c.do(ctx, http.MethodPut, path, nil, form, notFound); err != nil {
			var he *HTTPError
			if errors.As(err, &he) && notFound(he) {
				continue
			}
			return fmt.Errorf("erasing %s from VM %s: %w", k, vmName(id), err)
		}
	}
	return nil
}

func vmPath(id int) (string, error) {
	switch {
	case id == Self:
		return "/vm", nil
	case id >= 0:
		return "/vms/" + strconv.Itoa(id), nil
	}
	return "", fmt.Errorf("invalid VM ID %d", id)
}

func vmName(id int) string {
	if id == Self {
		return "self"
	}
	return strconv.Itoa(id)
}
