package coordinator

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestNoAdminAPI: with NoAdminAPI the coordinator starts without an admin
// listener (an AdminAddr that is not host:port is not even checked),
// writes no admin.addr, and still serves libp2p and its methods.
func TestNoAdminAPI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Init(dir); err != nil {
		t.Fatal(err)
	}
	cfg := TestConfig(dir)
	cfg.Logger = testLogger(t)
	cfg.NoAdminAPI, cfg.AdminAddr = true, "off"
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if u := c.AdminURL(); u != "" {
		t.Errorf("admin URL %q without an admin API", u)
	}
	if _, err := os.Stat(filepath.Join(dir, FileAdminAddr)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("admin.addr: %v, want none", err)
	}
	if len(c.P2PAddrs()) == 0 {
		t.Error("no libp2p address")
	}
	if _, err := c.CreateToken(TokenRequest{Site: "a"}); err != nil {
		t.Errorf("CreateToken: %v", err)
	}
	cfg.NoAdminAPI = false
	if err := cfg.Validate(); err == nil {
		t.Error(`admin_addr "off" validated with the admin API on`)
	}
}
