package cli

import (
	"encoding/json"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// errorFile is where the last failure of a service's verb is kept.
func errorFile(service, verb string) string {
	return path.Join(ErrorDir, service+"."+verb+".error")
}

// RecordError keeps err as the last failure of verb for status, or, with a
// nil err, forgets the verb's last failure. Daemons call it for what fails
// while they run (a reload); the CLI calls it for configure, start and stop.
// Recording is best effort: a full /run must not turn a success into a
// failure.
func (rt *Runtime) RecordError(verb string, err error) {
	if rt == nil || rt.Name == "" {
		return
	}
	p := errorFile(rt.Name, verb)
	if err == nil {
		_ = rt.Root.Remove(p)
		return
	}
	b, _ := json.Marshal(VerbError{Verb: verb, At: time.Now().UTC(), Message: describeError(err).Error()})
	if _, werr := rt.Root.WriteFile(p, append(b, '\n'), 0o640); werr != nil {
		rt.Log.Warn("recording the error for status", "verb", verb, "err", werr)
	}
}

// LastErrors reads the recorded failures of service, oldest first.
func (rt *Runtime) LastErrors(service string) []VerbError {
	matches, _ := globUnder(rt, ErrorDir, service+".*.error")
	var out []VerbError
	for _, m := range matches {
		b, err := rt.Root.ReadFile(m)
		if err != nil {
			continue
		}
		var e VerbError
		if json.Unmarshal(b, &e) != nil || e.Verb == "" {
			continue
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// globUnder lists the paths (as seen inside the root) of dir matching pattern.
func globUnder(rt *Runtime, dir, pattern string) ([]string, error) {
	ents, err := readDir(rt.Root.Path(dir))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range ents {
		if ok, _ := path.Match(pattern, name); ok && !strings.HasPrefix(name, ".") {
			out = append(out, path.Join(dir, name))
		}
	}
	return out, nil
}

func readDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}
