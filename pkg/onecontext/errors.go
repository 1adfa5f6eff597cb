package onecontext

import (
	"fmt"
	"strings"
)

// VarError is an invalid context value. The CLI maps it to exit status 2. Its
// message names the variable and the value, except for secrets, whose value is
// never printed.
type VarError struct {
	Name  string
	Value string
	Msg   string
}

func (e *VarError) Error() string {
	v := fmt.Sprintf("%q", e.Value)
	if IsSecret(e.Name) {
		v = "(secret, not shown)"
	}
	return fmt.Sprintf("%s=%s: %s", e.Name, v, e.Msg)
}

// Errorf returns a *VarError for variable name holding value.
func Errorf(name, value, format string, args ...any) error {
	return &VarError{Name: name, Value: value, Msg: fmt.Sprintf(format, args...)}
}

// IsSecret reports whether a variable holds a secret that must never be
// logged or printed.
func IsSecret(name string) bool {
	u := strings.ToUpper(name)
	for _, s := range []string{"PASSWORD", "TOKEN", "PRIVATE", "SECRET", "PSK", "_KEY"} {
		if strings.Contains(u, s) {
			return true
		}
	}
	return false
}
