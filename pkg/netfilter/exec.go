package netfilter

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// ExecBackend runs the real iptables-save and iptables-restore.
type ExecBackend struct {
	SaveCmd    string // "iptables-save"
	RestoreCmd string // "iptables-restore"
}

// System returns an Applier on the machine's iptables.
func System() *Applier {
	return &Applier{
		Backend: ExecBackend{SaveCmd: "iptables-save", RestoreCmd: "iptables-restore"},
		IPT: func() (IPTables, error) {
			return iptables.New(iptables.Timeout(10))
		},
	}
}

// Save runs iptables-save for one table.
func (b ExecBackend) Save(ctx context.Context, table string) ([]byte, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, b.SaveCmd, "-t", table)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s -t %s: %w: %s", b.SaveCmd, table, err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// Restore feeds payload to iptables-restore --noflush -w.
func (b ExecBackend) Restore(ctx context.Context, table string, payload []byte) error {
	var errb bytes.Buffer
	cmd := exec.CommandContext(ctx, b.RestoreCmd, "--noflush", "-w", "5")
	cmd.Stdin = bytes.NewReader(payload)
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", b.RestoreCmd, err, strings.TrimSpace(errb.String()))
	}
	return nil
}
