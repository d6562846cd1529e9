package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaymesh/relaymesh/internal/units"
)

// config.yaml takes sizes and rates in internal/units' grammar, caps also
// "unlimited", and plain numbers as before.
func TestLoadConfigUnits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		yml   string
		check func(Config) bool
	}{
		{"cache_quota: 2GiB\nmax_upload_bps: 100Mbit/s\nsite_wan_down_bps: 20 Mbit/s\n", func(c Config) bool {
			return c.CacheQuota == 2<<30 && c.MaxUploadBps == 12_500_000 && c.SiteWANDownBps == 2_500_000
		}},
		{"max_upload_bps: unlimited\ncache_quota: unlimited\nsite_wan_down_bps: unlimited\n", func(c Config) bool {
			return c.MaxUploadBps == 0 && c.CacheQuota == 0 && c.SiteWANDownBps == 0
		}},
		{"max_upload_bps: 1048576\ncache_quota: 0\nmax_package_bytes: 1.5GB\n", func(c Config) bool {
			return c.MaxUploadBps == 1<<20 && c.CacheQuota == 0 && c.MaxPackageBytes == 1_500_000_000
		}},
		{"up_bps: 12.5MB/s\ndown_bps: 1Gbit\nsource_floor_bps: 64KiB/s\ninstall_limits: {maxbytes: 64MiB, maxfiles: 10}\n", func(c Config) bool {
			return c.UpBps == 12_500_000 && c.DownBps == 125_000_000 && c.SourceFloorBps == 64<<10 && c.InstallLimits.MaxBytes == 64<<20
		}},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(tc.yml), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(dir)
		if err != nil || !tc.check(c) {
			t.Errorf("%q: loaded %+v, %v", tc.yml, c, err)
		}
	}
	for _, tc := range []struct{ yml, want string }{
		{"max_upload_bps: fast\n", `max_upload_bps: units: not a rate: "fast"`},
		{"cache_quota: lots\n", `cache_quota: units: not a size: "lots"`},
		{"source_floor_bps: unlimited\n", `source_floor_bps: units: not a rate: "unlimited"`},
		{"max_package_bytes: unlimited\n", `max_package_bytes: units: not a size`},
		{"install_limits: {maxbytes: 4 GiB B}\n", `install_limits.maxbytes`},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(tc.yml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(dir)
		if !errors.Is(err, ErrBadConfig) || !errors.Is(err, units.ErrBadSize) && !errors.Is(err, units.ErrBadRate) ||
			!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), ConfigFile) {
			t.Errorf("%q: error %v, want one naming %s and %q", tc.yml, err, ConfigFile, tc.want)
		}
	}
	// Settings written by node enroll/run keep a file written with units.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte("max_upload_bps: 100Mbit/s # the office link\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SaveSettings(dir, Settings{GossipPort: 4800}); err != nil {
		t.Fatal(err)
	}
	if c, err := LoadConfig(dir); err != nil || c.MaxUploadBps != 12_500_000 || c.GossipPort != 4800 {
		t.Errorf("after SaveSettings: %+v, %v", c, err)
	}
}
