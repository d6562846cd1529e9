package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/relaymesh/relaymesh/coordinator/aptmirror"
	"github.com/relaymesh/relaymesh/internal/units"
	"github.com/relaymesh/relaymesh/p2p"
)

// Files in the coordinator's directory.
const (
	FileIdentity   = "identity.key" // libp2p identity
	FileOrderKey   = "order.key"    // ed25519 order-signing key
	FileOrderPub   = "order.pub"
	FileAdminToken = "admin.token"
	FileGossipKey  = "gossip.key" // fleet memberlist keyring
	FileConfig     = "config.yaml"
	FileAdminAddr  = "admin.addr" // written by serve: the admin API's URL
	FileP2PAddrs   = "p2p.addrs"  // written by serve: libp2p multiaddrs with /p2p/
	DirState       = "state"
)

// Config holds every tunable of the coordinator.
type Config struct {
	Dir string `yaml:"-"`
	// Listen are the libp2p listen multiaddrs.
	Listen []string `yaml:"listen"`
	// AdminAddr is the admin HTTP API's host:port; loopback by default.
	AdminAddr string `yaml:"admin_addr"`
	// NoAdminAPI serves no admin API (AdminAddr is ignored, admin.addr not
	// written): the simulator in virtual time, where nothing may open a
	// real socket, drives the coordinator through its methods.
	NoAdminAPI bool `yaml:"-"`
	// TLSCert and TLSKey, when both set, serve the admin API over TLS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// MaxUploadBps caps fragment upload to all peers, bytes/s (0 = no cap).
	MaxUploadBps int64 `yaml:"max_upload_bps" units:"rate,cap"`
	// NoFeedback is how long a working node may stay silent before its row
	// shows ERR_TIMEOUT "no feedback" (LanGuard's 600 s).
	NoFeedback time.Duration `yaml:"no_feedback"`
	// SweepInterval is how often the no-feedback timers are checked.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// OnlineWindow: a node seen within it counts as alive.
	OnlineWindow time.Duration `yaml:"online_window"`
	// PushConcurrency bounds concurrent order pushes.
	PushConcurrency int `yaml:"push_concurrency"`
	// PushTimeout bounds one push to one node.
	PushTimeout time.Duration `yaml:"push_timeout"`
	// RedirectBusy: while this many fragment uploads run, the origin sends
	// a site relay asking for a fragment to relays of other sites it
	// already sent that fragment to (they serve it over their WAN
	// uplinks). 0 means 4; negative never redirects.
	RedirectBusy int `yaml:"redirect_busy"`
	// MaxPackageBytes is the largest archive a package may carry; build and
	// publish refuse bigger ones. 0 means DefaultMaxPackageBytes.
	MaxPackageBytes int64 `yaml:"max_package_bytes" units:"size"`
	// MaxOrderLifetime is the longest an order may stay valid (expires
	// minus not-before); deploy create refuses longer, and nodes enrolled
	// with it refuse longer orders. 0 means DefaultMaxOrderLifetime.
	MaxOrderLifetime time.Duration `yaml:"max_order_lifetime"`

	// Apt holds the Debian repositories patch deployments install from
	// (apt: repositories: [{url, suite, components, architectures,
	// keyring}]): the coordinator mirrors their verified files.
	Apt aptmirror.Config `yaml:"apt"`

	Logger *slog.Logger     `yaml:"-"`
	Now    func() time.Time `yaml:"-"`
	// Network is the network the libp2p host runs on; nil means TCP (the
	// simulator's is simulations/vnet).
	Network p2p.Network `yaml:"-"`
	// Console, when set, builds the web console served on the admin
	// listener beside /v1/ (package console; `coordinator serve` sets it).
	Console func(*Coordinator) http.Handler `yaml:"-"`
}

// Limits' defaults: an archive above 8 GiB is a mistake (a 1 TiB manifest
// made of one fragment repeated filled nodes' disks), and an order valid
// for more than 7 days outlives any maintenance plan.
const (
	DefaultMaxPackageBytes  int64 = 8 << 30
	DefaultMaxOrderLifetime       = 7 * 24 * time.Hour
	DefaultOrderLifetime          = 24 * time.Hour
)

func (c *Config) maxPackageBytes() int64 {
	if c.MaxPackageBytes > 0 {
		return c.MaxPackageBytes
	}
	return DefaultMaxPackageBytes
}

func (c *Config) maxOrderLifetime() time.Duration {
	if c.MaxOrderLifetime > 0 {
		return c.MaxOrderLifetime
	}
	return DefaultMaxOrderLifetime
}

// DefaultConfig is the configuration of a production coordinator.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:             dir,
		Listen:          []string{"/ip4/0.0.0.0/tcp/7471"},
		AdminAddr:       "127.0.0.1:7480",
		NoFeedback:      600 * time.Second,
		SweepInterval:   10 * time.Second,
		OnlineWindow:    3 * time.Minute,
		PushConcurrency: 32,
		PushTimeout:     10 * time.Second,
	}
}

// TestConfig is a coordinator on loopback with random ports and fast timers.
func TestConfig(dir string) Config {
	c := DefaultConfig(dir)
	c.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	c.AdminAddr = "127.0.0.1:0"
	c.SweepInterval = 100 * time.Millisecond
	c.PushTimeout = 5 * time.Second
	return c
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, a...))
	}
	if c.Dir == "" {
		return bad("dir is empty")
	}
	if len(c.Listen) == 0 {
		return bad("listen: give at least one multiaddr")
	}
	for _, l := range c.Listen {
		if _, err := ma.NewMultiaddr(l); err != nil {
			return bad("listen %q: %v", l, err)
		}
	}
	if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil && !c.NoAdminAPI {
		return bad("admin_addr %q: %v", c.AdminAddr, err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return bad("tls_cert and tls_key: give both or neither")
	}
	if c.MaxUploadBps < 0 {
		return bad("max_upload_bps %d: must be >= 0", c.MaxUploadBps)
	}
	if c.NoFeedback <= 0 {
		return bad("no_feedback %s: must be positive", c.NoFeedback)
	}
	if c.SweepInterval <= 0 {
		return bad("sweep_interval %s: must be positive", c.SweepInterval)
	}
	if c.OnlineWindow <= 0 {
		return bad("online_window %s: must be positive", c.OnlineWindow)
	}
	if c.PushConcurrency <= 0 {
		return bad("push_concurrency %d: must be positive", c.PushConcurrency)
	}
	if c.PushTimeout <= 0 {
		return bad("push_timeout %s: must be positive", c.PushTimeout)
	}
	if c.MaxPackageBytes < 0 {
		return bad("max_package_bytes %d: must be >= 0 (0 = 8 GiB)", c.MaxPackageBytes)
	}
	if err := c.Apt.Validate(); err != nil {
		return bad("apt: %v", err)
	}
	if c.MaxOrderLifetime < 0 {
		return bad("max_order_lifetime %s: must be >= 0 (0 = 168h)", c.MaxOrderLifetime)
	}
	return nil
}

// LoadConfig reads DIR/config.yaml over the defaults.
func LoadConfig(dir string) (Config, error) {
	c := DefaultConfig(dir)
	b, err := os.ReadFile(filepath.Join(dir, FileConfig))
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, FileOrderKey)); err != nil {
			return c, fmt.Errorf("%w: %s: run 'relaymesh coordinator init --dir %s' first", ErrNotInitialised, dir, dir)
		}
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := units.DecodeYAML(b, &c); err != nil {
		return c, fmt.Errorf("%w: %s: %w", ErrBadConfig, filepath.Join(dir, FileConfig), err)
	}
	c.Dir = dir
	return c, c.Validate()
}
