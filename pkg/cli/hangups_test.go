package cli

import (
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// SIGHUP reaches the channel (after onSignal) instead of ending the
// process; several in a row collapse into one pending value; after stop
// the signals no longer arrive.
func TestHangups(t *testing.T) {
	var seen atomic.Int32
	reload, stop := Hangups(func() { seen.Add(1) })
	for i := 0; i < 3; i++ {
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-reload:
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after SIGHUP")
	}
	deadline := time.Now().Add(5 * time.Second)
	for seen.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if seen.Load() < 1 {
		t.Fatal("onSignal did not see the SIGHUP")
	}
	time.Sleep(50 * time.Millisecond)
	select {
	case <-reload:
	default:
	}
	select {
	case <-reload:
		t.Fatal("more than one reload pending after a burst of SIGHUPs")
	default:
	}
	stop()
	// Still listening elsewhere in this process (or the test would die):
	// a second Hangups keeps the process alive while the first is stopped.
	again, stopAgain := Hangups(nil)
	defer stopAgain()
	_ = syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
	select {
	case <-again:
	case <-time.After(5 * time.Second):
		t.Fatal("no reload on the second listener")
	}
	select {
	case <-reload:
		t.Fatal("a stopped listener received a SIGHUP")
	case <-time.After(50 * time.Millisecond):
	}
}
