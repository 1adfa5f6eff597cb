package dhcp4

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/coredhcp/coredhcp/config"
	"github.com/coredhcp/coredhcp/logger"
	"github.com/coredhcp/coredhcp/plugins"
	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v3"
)

// NICConfig is one NIC's block of onelease-config.yml, as coredhcp's own
// loader read it.
type NICConfig struct {
	NIC     string
	Listen  net.UDPAddr
	Plugins []config.PluginConfig
	// Block is the block's YAML, to tell a changed server from an unchanged one.
	Block []byte
}

// PluginSet is one generation of plugin instances (onelease.Set): the
// plugins a server may load, an argument check without side effects, and
// Close to release what the instances hold (lease files).
type PluginSet interface {
	Plugins() []*plugins.Plugin
	Check(name string, args ...string) error
	Close() error
}

var nicKeyRe = regexp.MustCompile(`^eth[0-9]+$`)

// quietCoredhcp keeps coredhcp's own logger (logrus, used by its config
// loader) to warnings: its info lines would otherwise go to stderr on every load.
func quietCoredhcp() {
	logger.GetLogger("config").Logger.SetLevel(logrus.WarnLevel)
}

// ParseConfig splits onelease-config.yml into its NIC blocks and loads each
// with coredhcp's config loader (config.Load), which only reads files: each
// block goes through a private temporary file. Each block must be a DHCPv4
// server listening on its own NIC.
func ParseConfig(data []byte) ([]NICConfig, error) {
	quietCoredhcp()
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	names := make([]string, 0, len(doc))
	for k := range doc {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return nicLess(names[i], names[j]) })
	dir, err := os.MkdirTemp("", "one-dhcp4v2-config-")
	if err != nil {
		return nil, fmt.Errorf("checking configuration: %w", err)
	}
	defer os.RemoveAll(dir)
	var out []NICConfig
	var errs []error
	for _, nic := range names {
		node := doc[nic]
		c, err := loadBlock(dir, nic, &node)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", nic, err))
			continue
		}
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}

func loadBlock(dir, nic string, node *yaml.Node) (NICConfig, error) {
	if !nicKeyRe.MatchString(nic) {
		return NICConfig{}, fmt.Errorf("%q is not a NIC name (ethX)", nic)
	}
	block, err := yaml.Marshal(node)
	if err != nil {
		return NICConfig{}, err
	}
	path := filepath.Join(dir, nic+".yml")
	if err := os.WriteFile(path, block, 0o600); err != nil {
		return NICConfig{}, err
	}
	c, err := config.Load(path)
	if err != nil {
		return NICConfig{}, err
	}
	if c.Server6 != nil {
		return NICConfig{}, errors.New("server6 is not supported")
	}
	if c.Server4 == nil {
		return NICConfig{}, errors.New("no server4 section")
	}
	if len(c.Server4.Addresses) != 1 || c.Server4.Addresses[0].Zone != nic {
		return NICConfig{}, fmt.Errorf("listen must be exactly \"%%%s\" (the server of a NIC listens on that NIC only)", nic)
	}
	return NICConfig{NIC: nic, Listen: c.Server4.Addresses[0], Plugins: c.Server4.Plugins, Block: block}, nil
}

// LoadConfig loads onelease-config.yml the way the daemon serves it, and is
// what a candidate file must pass before it replaces the live one:
// coredhcp's loader, then each plugin's own argument check (no side
// effects); onelease must be present and last.
func LoadConfig(data []byte, ps PluginSet) ([]NICConfig, error) {
	cfgs, err := ParseConfig(data)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, c := range cfgs {
		if len(c.Plugins) == 0 || c.Plugins[len(c.Plugins)-1].Name != "onelease" {
			errs = append(errs, fmt.Errorf("%s: the last plugin must be onelease", c.NIC))
		}
		for _, p := range c.Plugins {
			if err := ps.Check(p.Name, p.Args...); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c.NIC, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfgs, nil
}

// nicLess orders eth2 before eth10.
func nicLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// sameBlock reports whether two loads of a NIC's block are the same server.
func sameBlock(a, b NICConfig) bool { return bytes.Equal(a.Block, b.Block) }
