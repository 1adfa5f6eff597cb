package cli

import (
	"os"
	"os/signal"
	"syscall"
)

// Hangups makes SIGHUP a request to re-read the context (the daemons'
// `reload`) instead of the end of the process: the channel receives a
// value for every SIGHUP (several in a row collapse into one), after
// onSignal, when set, has seen it. stop stops listening. Call it before
// anything slow, so an early SIGHUP cannot kill the process.
func Hangups(onSignal func()) (reload <-chan struct{}, stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	out := make(chan struct{}, 1)
	go func() {
		for range hup {
			if onSignal != nil {
				onSignal()
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out, func() { signal.Stop(hup); close(hup) }
}
