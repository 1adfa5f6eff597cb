package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
	"github.com/hypercx/vrouter/tests/onegatesim/sim"
)

const wgBenchToken = "wg-bench-token"

// wgBenchContext: 5 peers (the default), OneGate (the simulator on the
// internet host) as VM 10 of the fixtures' virtual router.
const wgBenchContext = `export ETH0_IP="203.0.113.1"
export ETH0_MASK="255.255.255.0"
export ETH1_IP="10.0.0.1"
export ETH1_MASK="255.255.255.0"
export ONEAPP_VNF_WG_ENABLED="YES"
export ONEAPP_VNF_WG_INTERFACE_OUT="eth0"
export ONEAPP_VNF_WG_INTERFACE_IN="eth1"
export ONEGATE_ENDPOINT="http://203.0.113.100:5030"
export TOKENTXT="` + wgBenchToken + `"
export VMID="10"
`

// benchWG measures one-wg in a router instance (wireguard-go: this kernel
// has no WireGuard) with a wg-quick client on the internet host:
//   - `one-wg start` with 5 peers and the configuration stored in OneGate,
//     from stopped until the client's traffic crosses the tunnel to the VM
//     (the client forgets its session first, so each run makes a new
//     handshake, as after a restart or a failover);
//   - TCP throughput client -> VM through the tunnel (wireguard-go on both
//     ends) and over the plain routed path, with iperf3.
func benchWG(b *bench) error {
	l := b.lab
	inet, err := l.Router("wginet")
	if err != nil {
		return err
	}
	vm, err := l.Host("wgvm")
	if err != nil {
		return err
	}
	r, err := l.Router("wgvr")
	if err != nil {
		return err
	}
	var gate *sim.Process
	for _, f := range []func() error{
		func() error { return l.Link(inet, "eth0", r, "eth0") },
		func() error { return lab.Addr(inet, "eth0", "203.0.113.100/24") },
		func() error { return lab.Addr(r, "eth0", "203.0.113.1/24") },
		func() error { return l.Link(vm, "eth0", r, "eth1") },
		func() error { return lab.Addr(vm, "eth0", "10.0.0.12/24") },
		func() error { return lab.Addr(r, "eth1", "10.0.0.1/24") },
		func() error {
			_, err := lab.Run(context.Background(), vm, "ip", "route", "add", "default", "via", "10.0.0.1")
			return err
		},
		func() error {
			_, err := lab.Run(context.Background(), r, "sysctl", "-qw", "net.ipv4.conf.eth1.forwarding=1", "net.ipv4.conf.eth0.forwarding=1")
			return err
		},
		func() error {
			_, err := l.Start(vm, "vm server", "ready", lab.Bin("nettool"), "serve", "--tcp", ":80", "--name", "vm")
			return err
		},
		func() error {
			_, err := l.Start(vm, "iperf3 server", "Server listening", "iperf3", "-s", "-B", "10.0.0.12", "--forceflush")
			return err
		},
		func() error { gate, err = sim.Start(l, inet, "203.0.113.100:5030", wgBenchToken, ""); return err },
		func() error { return r.Install("one-wg") },
		func() error { return r.WriteFile("/run/one-context/one_env", []byte(wgBenchContext), 0o400) },
	} {
		if err := f(); err != nil {
			return err
		}
	}
	run := func(args ...string) error { _, err := lab.Run(context.Background(), r, args...); return err }
	// The first start generates and publishes the configuration; the
	// measured ones reuse it.
	if err := run("one-wg", "start"); err != nil {
		return err
	}
	ut, err := gate.UserTemplate(inet, 10)
	if err != nil {
		return err
	}
	conf, err := base64.StdEncoding.DecodeString(ut["ONEGATE_VNF_WG_PEER0"])
	if err != nil {
		return err
	}
	client, err := l.WGClient(inet, "wgc0", conf)
	if err != nil {
		return err
	}
	if err := client.Up(); err != nil {
		return err
	}
	defer client.Down()
	// wg-quick strip: the peer part, to re-add the server as a new peer
	// (no session) before each run.
	stripped, err := lab.Run(context.Background(), inet, "wg-quick", "strip", filepath.Join(l.Dir, "wgc0.conf"))
	if err != nil {
		return err
	}
	strippedPath := filepath.Join(l.Dir, "wgc0.stripped")
	if err := os.WriteFile(strippedPath, []byte(stripped), 0o600); err != nil {
		return err
	}
	serverPub, err := lab.Run(context.Background(), r, "wg", "show", "wg0", "public-key")
	if err != nil {
		return err
	}
	probe := func() error {
		out, err := lab.Run(context.Background(), inet, lab.Bin("nettool"), "probe", "tcp", "10.0.0.12:80", "--timeout", "1s")
		if err == nil && !strings.Contains(out, "peer=169.254.33.2:") {
			err = errors.New("answer " + out)
		}
		return err
	}
	if err := lab.Eventually(10*time.Second, 50*time.Millisecond, probe); err != nil {
		return fmt.Errorf("the tunnel does not carry traffic: %w", err)
	}
	writes, err := gate.Writes(inet)
	if err != nil {
		return err
	}

	var total, startOnly []time.Duration
	for i := 0; i < b.runs; i++ {
		if err := run("one-wg", "stop"); err != nil {
			return err
		}
		if err := lab.Sh(context.Background(), inet, "wg set wgc0 peer "+strings.TrimSpace(serverPub)+" remove && wg addconf wgc0 "+strippedPath); err != nil {
			return err
		}
		t0 := time.Now()
		if err := run("one-wg", "start"); err != nil {
			return err
		}
		started := time.Since(t0)
		if err := lab.Eventually(10*time.Second, 5*time.Millisecond, probe); err != nil {
			return fmt.Errorf("run %d: no traffic through the tunnel: %w", i, err)
		}
		total = append(total, time.Since(t0))
		startOnly = append(startOnly, started)
	}
	if after, err := gate.Writes(inet); err != nil || len(after) != len(writes) {
		return fmt.Errorf("the measured starts published again (%v)", err)
	}
	med, lo, hi := stats(total)
	b.add("one-wg start, 5 peers, stored configuration -> traffic through the tunnel", "<= "+ms(500*time.Millisecond), spread(med, lo, hi), med <= 500*time.Millisecond)
	med, lo, hi = stats(startOnly)
	b.add("  of which one-wg start (OneGate reads, wireguard-go, wgctrl, netlink)", "-", spread(med, lo, hi), true)

	// Throughput: through the tunnel, then the plain routed path.
	runs := min(b.runs, 3)
	tunnel, err := iperf(inet, runs)
	if err != nil {
		return fmt.Errorf("iperf3 through the tunnel: %w", err)
	}
	if err := client.Down(); err != nil {
		return err
	}
	if _, err := lab.Run(context.Background(), inet, "ip", "route", "add", "10.0.0.0/24", "via", "203.0.113.1"); err != nil {
		return err
	}
	plain, err := iperf(inet, runs)
	if err != nil {
		return fmt.Errorf("iperf3 over the routed path: %w", err)
	}
	_, _ = lab.Run(context.Background(), inet, "ip", "route", "del", "10.0.0.0/24")
	_ = client.Up()
	b.add("TCP throughput client -> VM through the tunnel (wireguard-go both ends)", "-", mbps(tunnel), true)
	b.add("TCP throughput client -> VM, plain routed path", "-", mbps(plain), true)
	b.add("  tunnel / plain", "-", fmt.Sprintf("%.0f %%", 100*median(tunnel)/median(plain)), true)
	return run("one-wg", "stop")
}

// iperf runs iperf3 -c 10.0.0.12 for 3 s, runs times, and returns the
// received rates (bit/s).
func iperf(h lab.Host, runs int) ([]float64, error) {
	var out []float64
	for i := 0; i < runs; i++ {
		s, err := lab.Run(context.Background(), h, "iperf3", "-c", "10.0.0.12", "-t", "3", "-J")
		if err != nil {
			return nil, err
		}
		var res struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal([]byte(s), &res); err != nil {
			return nil, err
		}
		out = append(out, res.End.SumReceived.BitsPerSecond)
	}
	return out, nil
}

func median(xs []float64) float64 {
	med, _, _ := stats(xs)
	return med
}

func mbps(xs []float64) string {
	med, lo, hi := stats(xs)
	return fmt.Sprintf("%.0f Mbit/s (min %.0f, max %.0f; %d runs of 3 s)", med/1e6, lo/1e6, hi/1e6, len(xs))
}
