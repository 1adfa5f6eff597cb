package dhcp4

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hypercx/vrouter/pkg/cli"
)

// A configuration the running daemon cannot take on SIGHUP is recorded for
// status as the last reload error, and forgotten once a reload succeeds.
func TestReloadErrorRecorded(t *testing.T) {
	n := &fakeNet{conns: map[string][]*fakeConn{}, down: map[string]bool{}}
	svc := Service{Plugins: testPlugins, Listen: n.listen}
	r, _ := rt(t, ctx1)
	r.Name = "one-dhcp4v2"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Start(ctx, r) }()
	defer func() {
		cancel()
		<-done
	}()
	errFile := r.Root.Path(filepath.Join(cli.ErrorDir, "one-dhcp4v2.reload.error"))
	wait := func(what string, f func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !f() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("the daemon to serve", func() bool { return r.Root.Exists(StatePath) })
	good, err := r.Root.ReadFile(ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Root.WriteFile(ConfigPath, []byte("eth1: ["), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wait("the reload error recorded", func() bool { _, err := os.Stat(errFile); return err == nil })
	if errs := r.LastErrors("one-dhcp4v2"); len(errs) != 1 || errs[0].Verb != "reload" {
		t.Fatalf("last errors %+v", errs)
	}
	if _, err := r.Root.WriteFile(ConfigPath, good, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wait("the reload error forgotten", func() bool { _, err := os.Stat(errFile); return err != nil })
}
