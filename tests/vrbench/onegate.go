package main

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hypercx/vrouter/pkg/onegate"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

// bigVNet is an extended vnet document with n leases, every tenth one a
// backend carrying ONEGATE_LB0_* attributes.
func bigVNet(id, n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"VNET": {"ID": "%d", "NAME": "big%d", "PARENT_NETWORK_ID": {}, "AR_POOL": {"AR": [{"AR_ID": "0", "TYPE": "IP4", "SIZE": "%d", "LEASES": {"LEASE": [`, id, id, n)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"IP": "10.%d.%d.%d", "MAC": "02:00:0a:%02x:%02x:%02x", "VM": "%d", "NIC_NAME": "NIC0"`, id, i/250, 1+i%250, id, i/250, 1+i%250, 1000+i)
		if i%10 == 0 {
			fmt.Fprintf(&b, `, "BACKEND": "YES", "ONEGATE_LB0_IP": "<ETH0_EP0>", "ONEGATE_LB0_PORT": "80", "ONEGATE_LB0_SERVER_HOST": "10.%d.%d.%d", "ONEGATE_LB0_SERVER_PORT": "8080"`, id, i/250, 1+i%250)
		}
		b.WriteByte('}')
	}
	b.WriteString(`]}}]}}}`)
	return []byte(b.String())
}

// benchOneGate measures the OneGate client against the in-process simulator
// on loopback: discovery of the fixture router, discovery of two networks of
// 10,000 leases, decoding alone, and how long a refresh waits before it gets
// the last good answer when OneGate refuses connections.
func benchOneGate(b *bench) error {
	ctx := context.Background()
	const token = "bench-token"
	dir, err := os.MkdirTemp(b.lab.Dir, "onegate-")
	if err != nil {
		return err
	}
	if err := sim.CopyFixtures(sim.Fixtures(), dir); err != nil {
		return err
	}
	s := sim.New(dir, token)
	srv := httptest.NewServer(s)
	defer srv.Close()
	client := func(endpoint string) (*onegate.Client, error) {
		u, err := onegate.ParseEndpoint(endpoint)
		if err != nil {
			return nil, err
		}
		return onegate.New(onegate.Config{Endpoint: u, Token: token, VMID: 10}, nil)
	}
	c, err := client(srv.URL)
	if err != nil {
		return err
	}
	defer c.Close()
	networks := func() error {
		_, err := c.Networks(ctx)
		return err
	}
	med, lo, hi, err := timeRuns(b.runs, networks)
	if err != nil {
		return err
	}
	b.add("OneGate Networks(), fixture router (3 networks, loopback)", "<= 50.0 ms", spread(med, lo, hi), med <= 50*time.Millisecond)

	const leases = 10000
	big := bigVNet(1, leases)
	for _, id := range []int{0, 1} {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("vnet-%d.json", id)), bigVNet(id, leases), 0o644); err != nil {
			return err
		}
	}
	if err := os.Remove(filepath.Join(dir, "vnet-2.json")); err != nil {
		return err
	}
	med, lo, hi, err = timeRuns(b.runs, networks)
	if err != nil {
		return err
	}
	b.add(fmt.Sprintf("OneGate Networks(), 2 networks of %d leases (%.1f MB each)", leases, float64(len(big))/1e6), "<= 1000.0 ms", spread(med, lo, hi), med <= time.Second)
	med, lo, hi, err = timeRuns(b.runs, func() error {
		_, err := onegate.DecodeVNet(big)
		return err
	})
	if err != nil {
		return err
	}
	b.add(fmt.Sprintf("  of which decoding one network of %d leases", leases), "-", spread(med, lo, hi), true)

	// An outage: the endpoint refuses connections; default retries.
	if _, err := c.VRouter(ctx); err != nil {
		return err
	}
	down := httptest.NewServer(s)
	gone, err := client(down.URL)
	if err != nil {
		return err
	}
	if _, err := gone.VRouter(ctx); err != nil {
		return err
	}
	down.Close()
	runs := min(b.runs, 3)
	med, lo, hi, err = timeRuns(runs, func() error {
		vr, err := gone.VRouter(ctx)
		if vr == nil || !errors.Is(err, onegate.ErrStale) {
			return fmt.Errorf("no stale answer during the outage: %v", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.add("OneGate outage: last good answer after 4 refused attempts (default backoff)", "<= 5000.0 ms", spread(med, lo, hi), med <= 5*time.Second)
	return nil
}
