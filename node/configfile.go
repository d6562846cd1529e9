package node

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/units"
)

// Settings are config.yaml keys set from the command line (node enroll,
// node run) so that the next run keeps them. A nil or empty field is left
// as the file has it.
type Settings struct {
	Listen          []string
	Advertise       []string
	GossipBind      string
	GossipPort      int // 0: unchanged
	GossipAdvertise string
}

// Empty reports whether s sets nothing.
func (s Settings) Empty() bool {
	return len(s.Listen) == 0 && len(s.Advertise) == 0 && s.GossipBind == "" && s.GossipPort == 0 && s.GossipAdvertise == ""
}

// SaveSettings writes s into DIR/config.yaml, keeping every other key and
// comment of the file, after checking that the result loads; the file is
// replaced atomically, so a bad value or a crash leaves the old one.
func SaveSettings(dir string, s Settings) error {
	if s.Empty() {
		return nil
	}
	data, err := s.merged(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return core.WriteFileAtomic(filepath.Join(dir, ConfigFile), data, 0o600)
}

// Check reports whether s, written into DIR/config.yaml, would give a
// valid configuration, without writing anything.
func (s Settings) Check(dir string) error {
	if s.Empty() {
		return nil
	}
	_, err := s.merged(dir)
	return err
}

// merged returns DIR/config.yaml with s set in it, checked to load.
func (s Settings) merged(dir string) ([]byte, error) {
	path := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("node: read config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadConfig, path, err)
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: %s: not a mapping of keys to values", ErrBadConfig, path)
	}
	set := func(key string, v any) error {
		var val yaml.Node
		if err := val.Encode(v); err != nil {
			return err
		}
		if val.Kind == yaml.SequenceNode {
			val.Style = yaml.FlowStyle
		}
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == key {
				root.Content[i+1] = &val
				return nil
			}
		}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &val)
		return nil
	}
	var errs []error
	if len(s.Listen) > 0 {
		errs = append(errs, set("listen", s.Listen))
	}
	if len(s.Advertise) > 0 {
		errs = append(errs, set("advertise", s.Advertise))
	}
	if s.GossipBind != "" {
		errs = append(errs, set("gossip_bind", s.GossipBind))
	}
	if s.GossipPort != 0 {
		errs = append(errs, set("gossip_port", s.GossipPort))
	}
	if s.GossipAdvertise != "" {
		errs = append(errs, set("gossip_advertise", s.GossipAdvertise))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("node: config: %w", err)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("node: config: %w", err)
	}
	_ = enc.Close()
	// The new file must load before it replaces the old one.
	c := DefaultConfig(dir)
	if err := units.DecodeYAML(buf.Bytes(), &c); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadConfig, path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
