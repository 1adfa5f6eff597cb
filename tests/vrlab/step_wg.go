package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/hypercx/vrouter/tests/lab"
)

var privateKeyLine = regexp.MustCompile(`(?m)^PrivateKey\s*=\s*(\S+)`)

// stepWG shows the WireGuard VPN as one-failover runs it on the master
// (after the failover step: the new master). The first master published the
// server and peer configurations to both router VMs' user templates through
// OneGate at boot; the new master serves the same keys. A laptop on the
// internet side brings the tunnel up with peer 0's configuration, decoded
// from the template as the guide shows, and reaches the VM on the private
// network; `one-wg peer 0` prints the same configuration; a restart keeps the
// keys and the laptop's unchanged configuration still connects.
func stepWG(w *world, r *report) error {
	fmt.Println("== WireGuard VPN on the master: a laptop on the internet reaches the VM with a published peer configuration")
	m, err := w.master()
	if err != nil {
		return r.add("wg", "a master to connect to", 0, err)
	}
	b := w.ha.Other(m)
	ctx := context.Background()
	var conf []byte
	var laptop *lab.Router
	var client *lab.WGClient
	serverKey := func(rt *lab.Router) (string, error) {
		out, err := lab.Run(ctx, rt, "wg", "show", "wg0", "public-key")
		return strings.TrimSpace(out), err
	}
	reach := func() error {
		return lab.Eventually(10*time.Second, 200*time.Millisecond, func() error {
			out, err := lab.Run(ctx, laptop, lab.Bin("nettool"), "probe", "tcp", lab.VMIP(0)+":80", "--timeout", "1s")
			if err == nil && !strings.Contains(out, "peer=169.254.33.2:") {
				err = fmt.Errorf("answer %q", strings.TrimSpace(out))
			}
			return err
		})
	}
	err = r.all([]checkFunc{
		{"wg", "OneGate: VMs 10 and 11 hold ONEGATE_VNF_WG_SERVER, its timestamp, PEER0..4", func() error {
			var first map[string]string
			for _, id := range []int{10, 11} {
				ut, err := w.gate.UserTemplate(w.inet, id)
				if err != nil {
					return err
				}
				for _, k := range []string{"SERVER", "SERVER_TIMESTAMP", "PEER0", "PEER4"} {
					if ut["ONEGATE_VNF_WG_"+k] == "" {
						return fmt.Errorf("VM %d has no ONEGATE_VNF_WG_%s", id, k)
					}
				}
				if first == nil {
					first = ut
				} else if ut["ONEGATE_VNF_WG_SERVER"] != first["ONEGATE_VNF_WG_SERVER"] {
					return fmt.Errorf("VMs 10 and 11 hold different configurations")
				}
			}
			if conf, err = base64.StdEncoding.DecodeString(first["ONEGATE_VNF_WG_PEER0"]); err != nil {
				return err
			}
			return nil
		}},
		{"wg", m.Role + " serves the keys published at boot; nothing was published since", func() error {
			ut, err := w.gate.UserTemplate(w.inet, 10)
			if err != nil {
				return err
			}
			srv, _ := base64.StdEncoding.DecodeString(ut["ONEGATE_VNF_WG_SERVER"])
			mm := privateKeyLine.FindSubmatch(srv)
			if mm == nil {
				return fmt.Errorf("no PrivateKey in the server configuration")
			}
			k, err := wgtypes.ParseKey(string(mm[1]))
			if err != nil {
				return err
			}
			got, err := serverKey(m)
			if err != nil {
				return err
			}
			if got != k.PublicKey().String() {
				return fmt.Errorf("%s's key %s is not the published one", m.Role, got)
			}
			writes, err := w.gate.Writes(w.inet)
			if err != nil {
				return err
			}
			if len(writes) != 2 {
				return fmt.Errorf("%d user template updates, want the 2 of boot", len(writes))
			}
			return nil
		}},
		{"wg", "laptop on the internet: wg-quick up with PEER0 (base64-decoded)", func() error {
			if conf == nil {
				return fmt.Errorf("no published configuration")
			}
			var err error
			if laptop, err = w.lab.Router("laptop"); err != nil {
				return err
			}
			if err := w.ha.Public.Attach(laptop, "eth0", "203.0.113.50/24"); err != nil {
				return err
			}
			if client, err = w.lab.WGClient(laptop, "wg0", conf); err != nil {
				return err
			}
			fmt.Printf("           %s\n", strings.ReplaceAll(strings.TrimSpace(redact(conf)), "\n", "\n           "))
			return client.Up()
		}},
		{"wg", "laptop -> VM 10.0.0.12:80 through the tunnel (the VM sees 169.254.33.2)", func() error {
			if client == nil {
				return fmt.Errorf("no tunnel")
			}
			return reach()
		}},
		{"wg", m.Role + ": one-wg peer 0 prints the published configuration", func() error {
			out, err := lab.Run(ctx, m, "one-wg", "peer", "0")
			if err != nil {
				return err
			}
			if out != string(conf) {
				return fmt.Errorf("one-wg peer 0 differs from ONEGATE_VNF_WG_PEER0")
			}
			return nil
		}},
		{"wg", b.Role + " (backup): no wg0, no wireguard-go", func() error {
			if _, err := lab.Run(ctx, b, "ip", "link", "show", "wg0"); err == nil {
				return fmt.Errorf("wg0 exists on the backup")
			}
			if p := b.PIDs("wireguard-go"); len(p) > 0 {
				return fmt.Errorf("wireguard-go runs on the backup: %v", p)
			}
			return nil
		}},
		{"wg", m.Role + ": rc-service one-wg restart: same keys; the laptop reconnects unchanged", func() error {
			before, err := serverKey(m)
			if err != nil {
				return err
			}
			if _, err := m.RC("one-wg", "restart"); err != nil {
				return err
			}
			if after, err := serverKey(m); err != nil || after != before {
				return fmt.Errorf("the server key changed (%v)", err)
			}
			if client == nil {
				return fmt.Errorf("no tunnel")
			}
			if err := client.Redial(); err != nil {
				return err
			}
			return reach()
		}},
		{"wg", m.Role + ": one-wg status: the device matches the stored configuration", func() error {
			_, err := lab.Run(ctx, m, "one-wg", "status")
			return err
		}},
	})
	if client != nil {
		_ = client.Down()
	}
	return err
}

// redact hides the private and preshared keys of a configuration shown on
// the terminal.
func redact(conf []byte) string {
	var out []string
	for _, l := range strings.Split(string(conf), "\n") {
		if k, _, ok := strings.Cut(l, "="); ok && (strings.TrimSpace(k) == "PrivateKey" || strings.TrimSpace(k) == "PresharedKey") {
			l = k + "= (secret)"
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}
