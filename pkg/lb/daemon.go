package lb

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hypercx/vrouter/pkg/cli"
	"github.com/hypercx/vrouter/pkg/fsroot"
)

// Hangups returns a channel that receives a value for every SIGHUP (several
// in a row collapse into one) and a function that stops listening.
func Hangups() (<-chan struct{}, func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	out := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out, func() { signal.Stop(hup); close(hup) }
}

// Reloader returns a Loop's Load: it reads the context again the way the
// verb did and parses it; after sees every context that parsed.
func Reloader[S any](rt *cli.Runtime, parse func(*cli.Runtime) (S, error), after func(S)) func() (S, error) {
	return func() (S, error) {
		var zero S
		if rt.LoadEnv == nil {
			return zero, errors.New("no way to read the context again")
		}
		env, warnings, err := rt.LoadEnv()
		if err != nil {
			return zero, err
		}
		for _, w := range warnings {
			rt.Log.Warn(w)
		}
		next := *rt
		next.Env = env
		sp, err := parse(&next)
		if err == nil && after != nil {
			after(sp)
		}
		return sp, err
	}
}

// Lock takes the lock file path under root without waiting, so a second
// daemon of a service fails at once; the returned function releases it.
func Lock(root fsroot.Root, path, service string) (func(), error) {
	if err := root.MkdirAll("/run", 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(root.Path(path), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another %s daemon is running (%s is locked)", service, root.Path(path))
	}
	return func() { f.Close() }, nil
}
