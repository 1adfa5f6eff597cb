package lab

import (
	"context"
	"os"
	"path/filepath"
)

// WGClient is a WireGuard client in a lab host, brought up with wg-quick
// from a configuration as users get it (the guide: "wg-quick up wg0.conf").
// The kernel of the lab machine may have no WireGuard: wg-quick then runs
// wireguard-go, whose socket lives in /var/run/wireguard, machine-wide for
// hosts that are plain namespaces, so the device name must be unique there
// (router instances have their own /run).
type WGClient struct {
	Host Host
	Dev  string
	conf string
}

// WGClient writes conf (wg-quick format) for device dev of h; Up brings it
// up.
func (l *Lab) WGClient(h Host, dev string, conf []byte) (*WGClient, error) {
	p := filepath.Join(l.Dir, dev+".conf")
	if err := os.WriteFile(p, conf, 0o600); err != nil {
		return nil, err
	}
	return &WGClient{Host: h, Dev: dev, conf: p}, nil
}

// Up runs wg-quick up.
func (c *WGClient) Up() error {
	_, err := Run(context.Background(), c.Host, "wg-quick", "up", c.conf)
	return err
}

// Down runs wg-quick down (which also ends the client's wireguard-go).
func (c *WGClient) Down() error {
	_, err := Run(context.Background(), c.Host, "wg-quick", "down", c.conf)
	return err
}

// Redial takes the tunnel down and up again with the same configuration,
// as a user reconnecting does: the next packet makes a new handshake.
func (c *WGClient) Redial() error {
	if err := c.Down(); err != nil {
		return err
	}
	return c.Up()
}
