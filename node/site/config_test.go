package site

import (
	"errors"
	"strings"
	"testing"
)

func validConfig() Config {
	c := DefaultTestConfig()
	c.Name = "n1"
	c.Keyring = [][]byte{make([]byte, 32)}
	c.Meta = func() Meta { return Meta{NodeID: "n1", Site: "s"} }
	return c
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	d := DefaultConfig()
	d.Name, d.Keyring, d.Meta = "n1", [][]byte{make([]byte, 32)}, validConfig().Meta
	if err := d.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	tests := []struct {
		field string
		mut   func(*Config)
	}{
		{"Name", func(c *Config) { c.Name = "" }},
		{"BindAddr", func(c *Config) { c.BindAddr = "localhost" }},
		{"BindPort", func(c *Config) { c.BindPort = 70000 }},
		{"Keyring", func(c *Config) { c.Keyring = nil }},
		{"Keyring[1]", func(c *Config) { c.Keyring = append(c.Keyring, make([]byte, 16)) }},
		{"Meta", func(c *Config) { c.Meta = nil }},
		{"RelaysPerSite", func(c *Config) { c.RelaysPerSite = 0 }},
		{"MaxRelays", func(c *Config) { c.MaxRelays = 0 }},
		{"Hysteresis", func(c *Config) { c.Hysteresis = 0.9 }},
		{"MaxMessageSize", func(c *Config) { c.MaxMessageSize = 0 }},
		{"AdviceTransmits", func(c *Config) { c.AdviceTransmits = 0 }},
		{"ProbeTimeout", func(c *Config) { c.ProbeTimeout = c.ProbeInterval }},
		{"GossipInterval", func(c *Config) { c.GossipInterval = 0 }},
		{"Label", func(c *Config) { c.Label = strings.Repeat("x", 300) }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.mut(&c)
			err := c.Validate()
			if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tt.field+" ") {
				t.Fatalf("err = %v, want ErrBadConfig naming %s", err, tt.field)
			}
		})
	}
	c := validConfig()
	c.Keyring, c.InsecureNoEncryption = nil, true
	if err := c.Validate(); err != nil {
		t.Fatalf("InsecureNoEncryption: %v", err)
	}
}
