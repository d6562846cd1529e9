package coordinator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaymesh/relaymesh/internal/units"
)

func TestLoadConfigUnits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Init(dir); err != nil {
		t.Fatal(err)
	}
	write := func(yml string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, FileConfig), []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("max_upload_bps: 100Mbit/s\nmax_package_bytes: 2GiB\n")
	if c, err := LoadConfig(dir); err != nil || c.MaxUploadBps != 12_500_000 || c.MaxPackageBytes != 2<<30 {
		t.Errorf("loaded %+v, %v", c, err)
	}
	write("max_upload_bps: unlimited\nmax_package_bytes: 1073741824\n")
	if c, err := LoadConfig(dir); err != nil || c.MaxUploadBps != 0 || c.MaxPackageBytes != 1<<30 {
		t.Errorf("loaded %+v, %v", c, err)
	}
	write("max_upload_bps: 100 Mbit/h\n")
	_, err := LoadConfig(dir)
	checkErr(t, err, ErrBadConfig, `max_upload_bps: units: not a rate: "100 Mbit/h"`)
	checkErr(t, err, units.ErrBadRate, "100Mbit/s")
	write("max_package_bytes: unlimited\n")
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), "max_package_bytes") {
		t.Errorf("max_package_bytes: unlimited: %v, want an error (0 means 8 GiB there, not no cap)", err)
	}
}
