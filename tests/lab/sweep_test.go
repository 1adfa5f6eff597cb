package lab

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A lab whose process died without closing it is removed by the next lab
// (its namespace's processes killed by PID, the namespace deleted, its
// directory removed); a lab whose process lives is left alone.
func TestSweepRemovesOnlyOrphanedLabs(t *testing.T) {
	if why := CanRun(); why != "" {
		t.Skip("lab test skipped: " + why)
	}
	// A PID that no longer runs: a process that ended.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	orphan, err := New("swp")
	if err != nil {
		t.Fatal(err)
	}
	live, err := New("swp")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	h, err := orphan.Host("h")
	if err != nil {
		t.Fatal(err)
	}
	sleeper := h.Command(t.Context(), "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = sleeper.Wait(); close(exited) }()
	if _, err := live.Host("h"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orphan.Dir, ownerFile), []byte(strconv.Itoa(gone.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}

	var log bytes.Buffer
	Sweep(&log)
	if !strings.Contains(log.String(), "removed lab "+orphan.ID+" ") {
		t.Errorf("sweep said: %q", log.String())
	}
	if _, err := os.Stat("/run/netns/" + h.Netns()); !os.IsNotExist(err) {
		t.Errorf("the orphan's namespace is still there: %v", err)
	}
	if _, err := os.Stat(orphan.Dir); !os.IsNotExist(err) {
		t.Errorf("the orphan's directory is still there: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Error("the process in the orphan's namespace still runs")
	}
	if _, err := os.Stat("/run/netns/vrl-" + live.ID + "-h"); err != nil {
		t.Errorf("the live lab's namespace was removed: %v", err)
	}
	if strings.Contains(log.String(), live.ID) {
		t.Errorf("the live lab was swept: %q", log.String())
	}
	_ = orphan.Close() // nothing left; must not fail the test
}
