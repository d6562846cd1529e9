package node

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/memberlist"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/units"
	"github.com/relaymesh/relaymesh/node/install"
	"github.com/relaymesh/relaymesh/node/scan"
	"github.com/relaymesh/relaymesh/p2p"
)

// Where a node listens unless told otherwise: libp2p on every interface at
// DefaultPort (TCP), the site's gossip pool on every interface at
// DefaultGossipPort (UDP and TCP). Site peers reach each other on a LAN
// with no configuration; the address advertised to them is the one that
// routes to the coordinator (see Config.Advertise). Tests, the demo and the
// simulator ask for loopback explicitly (TestConfig).
const (
	DefaultPort       = 4711
	DefaultGossipPort = 4712
	DefaultListen     = "/ip4/0.0.0.0/tcp/4711"
	DefaultGossipBind = "0.0.0.0"
)

// ConfigFile is the optional configuration file inside the node directory.
const ConfigFile = "config.yaml"

// Config is every tunable of a node. Field names in config.yaml are the
// yaml tags; durations are written as "60s", "5m"; sizes and rates (the
// fields tagged units) in internal/units' grammar, "64MiB", "100Mbit/s",
// and caps also "unlimited".
type Config struct {
	// Dir holds node.json, the identity, the cache and temp dirs.
	Dir string `yaml:"-"`
	// Listen are libp2p multiaddrs to listen on.
	Listen []string `yaml:"listen"`
	// Advertise are the libp2p multiaddrs site peers and the coordinator
	// dial to reach this node. Empty means: the listen addresses, with an
	// unspecified IP (0.0.0.0, ::) replaced by this host's address on the
	// route to the coordinator. Set it when that address is not the one
	// peers can reach (NAT, several interfaces).
	Advertise []string `yaml:"advertise"`

	// SyncInterval is the period of order catch-up and heartbeat (each
	// wait drawn within ±25 % of it).
	SyncInterval time.Duration `yaml:"sync_interval"`
	// CallTimeout bounds one exchange with the coordinator.
	CallTimeout time.Duration `yaml:"call_timeout"`

	// StatusBackoffMin and StatusBackoffMax bound the doubling delay
	// between failed status deliveries; each wait is jittered to between
	// half and all of it.
	StatusBackoffMin time.Duration `yaml:"status_backoff_min"`
	StatusBackoffMax time.Duration `yaml:"status_backoff_max"`
	// StatusBatch is the most reports sent in one batch.
	StatusBatch int `yaml:"status_batch"`

	// FetchConcurrency is the most fragment fetches in flight per job.
	FetchConcurrency int `yaml:"fetch_concurrency"`
	// FragmentRetry is how many times one fragment fetch is tried within
	// one job attempt.
	FragmentRetry int `yaml:"fragment_retry"`
	// MaxPackageBytes and MaxPackageFragments are the largest package
	// (archive size, fragment count) this node fetches; a manifest above
	// either is refused with ERR_DOWNLOAD_PACK before a fragment is fetched.
	MaxPackageBytes     int64 `yaml:"max_package_bytes" units:"size"`
	MaxPackageFragments int   `yaml:"max_package_fragments"`
	// ParallelDownloads is how many jobs may download at once.
	ParallelDownloads int `yaml:"parallel_downloads"`
	// JobAttempts is how many times a job's download is attempted before
	// the job fails; JobBackoffMin/Max bound the doubling delay between
	// (each wait jittered to between half and all of it).
	JobAttempts   int           `yaml:"job_attempts"`
	JobBackoffMin time.Duration `yaml:"job_backoff_min"`
	JobBackoffMax time.Duration `yaml:"job_backoff_max"`

	// WaitStep is the longest single sleep while a job waits for its
	// not-before time or maintenance window; the clock (Now) is read again
	// after each, so a clock change or an injected clock is noticed.
	WaitStep time.Duration `yaml:"wait_step"`

	// CacheQuota caps the fragment bytes in the cache; 0 means unlimited.
	CacheQuota int64 `yaml:"cache_quota" units:"size,cap"`
	// RebootCommand is run (argv) when an order asks for a reboot; empty
	// means node/runner's default, shutdown -r +1.
	RebootCommand []string `yaml:"reboot_command"`
	// TempDir is where launch packages are extracted; empty means DIR/tmp.
	TempDir string `yaml:"temp_dir"`
	// InstallLimits caps what one archive may put on disk.
	InstallLimits install.Limits `yaml:"install_limits"`
	// MaxUploadBps caps fragment upload to peers, bytes/s; 0 = unlimited.
	MaxUploadBps int64 `yaml:"max_upload_bps" units:"rate,cap"`
	// SourceFloorBps is the slowest a site peer or relay may send a
	// fragment, bytes/s, once SourceFloorGrace has passed since its
	// header: a slower one is cut, the fetch moves to another source and
	// the slow one is asked last for a minute. 0 turns the floor off. The
	// coordinator and other sites' relays are not held to it (see
	// node/mesh Config.FloorBps).
	SourceFloorBps   int64         `yaml:"source_floor_bps" units:"rate"`
	SourceFloorGrace time.Duration `yaml:"source_floor_grace"`
	// SourceFloorFraction raises the floor for site peers that are not
	// relays to this fraction of the rate measured from site members
	// (default 0.05: a peer twenty times slower than the site is cut).
	SourceFloorFraction float64 `yaml:"source_floor_fraction"`

	// Strategy is how fragments are fetched: mesh (site peers, relay,
	// coordinator), relay (relay pull-through only) or direct (every
	// fragment from the coordinator).
	Strategy string `yaml:"strategy"`
	// NoGossip keeps the node out of its site's pool: it then works
	// straight from the coordinator.
	NoGossip bool `yaml:"no_gossip"`
	// GossipBind and GossipPort are where the site's memberlist pool is
	// joined (UDP and TCP); port 0 picks a free one.
	GossipBind string `yaml:"gossip_bind"`
	GossipPort int    `yaml:"gossip_port"`
	// GossipAdvertise is the IP other members use to reach this node's
	// gossip port; empty means gossip_bind, or, when that is unspecified,
	// the IP advertised for libp2p.
	GossipAdvertise string `yaml:"gossip_advertise"`
	// FastGossip uses test timings for the pool (tests, demo, simulator).
	FastGossip bool `yaml:"fast_gossip"`
	// NotRelay keeps this node from being elected relay.
	NotRelay bool `yaml:"not_relay"`
	// UpBps and DownBps are this node's declared link rates (bytes/s),
	// which relay election ranks.
	UpBps   int64 `yaml:"up_bps" units:"rate"`
	DownBps int64 `yaml:"down_bps" units:"rate"`
	// RelaysPerSite: a site with more live members elects one more relay
	// per this many (0: the site package's default).
	RelaysPerSite int `yaml:"relays_per_site"`
	// SiteWANDownBps caps what this node pulls from outside the site while
	// it is the relay, bytes/s; 0 = no cap.
	SiteWANDownBps int64 `yaml:"site_wan_down_bps" units:"rate,cap"`
	// GossipTransport replaces memberlist's network transport (simulator).
	GossipTransport memberlist.Transport `yaml:"-"`
	// Network is the network the node's libp2p host and reachability
	// probes run on; nil means TCP. The simulator gives each node its
	// endpoint of a simulated network (simulations/vnet).
	Network p2p.Network `yaml:"-"`
	// Store replaces the badger cache under Dir (simulator: cache.NewMemory).
	Store StoreKV `yaml:"-"`
	// CorruptServing makes this node serve fragments with one byte flipped:
	// a fault the simulator and tests inject to check that peers detect,
	// drop and avoid bad bytes. Never set it on a real node.
	CorruptServing bool `yaml:"-"`

	// DebInstall and DebRemove are the argv that install a .deb package
	// (its path appended) and remove one (its name appended); empty means
	// node/runner's defaults: apt-get install -y … and dpkg --remove.
	DebInstall []string `yaml:"deb_install"`
	DebRemove  []string `yaml:"deb_remove"`
	// AptInstall is the argv that installs a patch deployment's .debs in
	// one apt transaction (their paths appended); empty means
	// node/runner's default: apt-get install -y --no-download … with
	// DPkg::Lock::Timeout=300.
	AptInstall []string `yaml:"apt_install"`

	// Scan says where the patch scan reads dpkg's status and runs apt
	// (see node/scan.Config): dpkg_admindir, apt_get, apt_root,
	// apt_lists_dir, apt_options, upgrade, timeout, os_release,
	// kernel_release, reboot_required.
	Scan scan.Config `yaml:"scan"`
	// ScanInterval is the period of the inventory scan, counted from the
	// last one and spread ±25 %; 0 turns periodic scans off (scan orders
	// still run).
	ScanInterval time.Duration `yaml:"scan_interval"`
	// Scanner replaces node/scan (tests, simulator).
	Scanner Scanner `yaml:"-"`

	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger `yaml:"-"`
	// Now is the clock; nil means time.Now.
	Now func() time.Time `yaml:"-"`
	// Installer runs installs; nil means node/runner. Tests and the
	// simulator set their own.
	Installer Installer `yaml:"-"`
}

// StoreKV is a fragment store with its durable KV area, as cache.Badger
// and cache.Memory are.
type StoreKV interface {
	cache.Store
	KV() cache.KV
}

// DefaultConfig returns the production settings for a node rooted at dir.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:               dir,
		Listen:            []string{DefaultListen},
		SyncInterval:      60 * time.Second,
		CallTimeout:       30 * time.Second,
		StatusBackoffMin:  time.Second,
		StatusBackoffMax:  60 * time.Second,
		StatusBatch:       100,
		FetchConcurrency:  4,
		FragmentRetry:     3,
		ParallelDownloads: 2,
		// The coordinator's default package maximum; 8 GiB at the
		// smallest fragment size is 131,072 fragments.
		MaxPackageBytes:     8 << 30,
		MaxPackageFragments: (8 << 30) / core.MinFragmentSize,
		JobAttempts:         5,
		JobBackoffMin:       10 * time.Second,
		JobBackoffMax:       10 * time.Minute,
		WaitStep:            time.Minute,
		CacheQuota:          8 << 30,
		Strategy:            "mesh",
		GossipBind:          DefaultGossipBind,
		GossipPort:          DefaultGossipPort,
		UpBps:               100e6 / 8,
		DownBps:             100e6 / 8,
		InstallLimits:       install.DefaultLimits(),
		SourceFloorBps:      64 << 10,
		SourceFloorGrace:    5 * time.Second,
		SourceFloorFraction: 0.05,
		Scan:                scan.DefaultConfig(),
		ScanInterval:        24 * time.Hour,
	}
}

// TestConfig returns DefaultConfig with timers fast enough for in-process
// tests and simulations.
func TestConfig(dir string) Config {
	c := DefaultConfig(dir)
	c.SyncInterval = 200 * time.Millisecond
	c.CallTimeout = 5 * time.Second
	c.StatusBackoffMin = 10 * time.Millisecond
	c.StatusBackoffMax = 200 * time.Millisecond
	c.JobBackoffMin = 10 * time.Millisecond
	c.JobBackoffMax = 100 * time.Millisecond
	c.WaitStep = 20 * time.Millisecond
	c.CacheQuota = 0
	// Tests and simulations run many nodes on one machine: loopback, with
	// ports the system picks.
	c.Listen = []string{LoopbackListen}
	c.GossipBind, c.GossipPort = "127.0.0.1", 0
	// A lone node with the coordinator; mesh tests turn gossip on.
	c.NoGossip = true
	c.FastGossip = true
	// Never scan the host's dpkg on a schedule; tests that scan give a
	// root of their own.
	c.ScanInterval = 0
	return c
}

// Validate names the first bad field.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, a...))
	}
	if c.Dir == "" {
		return bad("Dir is empty: give the node directory (the one enroll wrote)")
	}
	if len(c.Listen) == 0 {
		return bad("listen is empty: give at least one multiaddr, e.g. %s", DefaultListen)
	}
	for i, s := range c.Listen {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return bad("listen[%d] %q: %v", i, s, err)
		}
	}
	for i, s := range c.Advertise {
		if err := checkAdvertise(s); err != nil {
			return bad("advertise[%d] %q: %v", i, s, err)
		}
	}
	if c.GossipAdvertise != "" && net.ParseIP(c.GossipAdvertise) == nil {
		return bad("gossip_advertise %q: want an IP address, e.g. 10.0.0.17", c.GossipAdvertise)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"sync_interval", c.SyncInterval}, {"call_timeout", c.CallTimeout},
		{"status_backoff_min", c.StatusBackoffMin}, {"status_backoff_max", c.StatusBackoffMax},
		{"job_backoff_min", c.JobBackoffMin}, {"job_backoff_max", c.JobBackoffMax},
		{"wait_step", c.WaitStep},
	} {
		if d.v <= 0 {
			return bad("%s %s: must be positive", d.name, d.v)
		}
	}
	if c.StatusBackoffMax < c.StatusBackoffMin {
		return bad("status_backoff_max %s is below status_backoff_min %s", c.StatusBackoffMax, c.StatusBackoffMin)
	}
	if c.JobBackoffMax < c.JobBackoffMin {
		return bad("job_backoff_max %s is below job_backoff_min %s", c.JobBackoffMax, c.JobBackoffMin)
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"status_batch", c.StatusBatch}, {"fetch_concurrency", c.FetchConcurrency},
		{"fragment_retry", c.FragmentRetry}, {"parallel_downloads", c.ParallelDownloads},
		{"job_attempts", c.JobAttempts}, {"max_package_fragments", c.MaxPackageFragments},
	} {
		if n.v <= 0 {
			return bad("%s %d: must be positive", n.name, n.v)
		}
	}
	switch c.Strategy {
	case "mesh", "relay", "direct":
	default:
		return bad("strategy %q: want mesh, relay or direct", c.Strategy)
	}
	if !c.NoGossip && c.GossipBind == "" {
		return bad("gossip_bind is empty: give the address to join the site's pool on, e.g. 0.0.0.0")
	}
	if !c.NoGossip && net.ParseIP(c.GossipBind) == nil {
		return bad("gossip_bind %q: want an IP address, e.g. 0.0.0.0", c.GossipBind)
	}
	if c.GossipPort < 0 || c.GossipPort > 65535 {
		return bad("gossip_port %d: want 0-65535", c.GossipPort)
	}
	if c.UpBps < 0 || c.DownBps < 0 || c.SiteWANDownBps < 0 || c.RelaysPerSite < 0 {
		return bad("up_bps, down_bps, site_wan_down_bps and relays_per_site must be >= 0")
	}
	if c.SourceFloorBps < 0 {
		return bad("source_floor_bps %d: must be >= 0 (0 turns the floor off)", c.SourceFloorBps)
	}
	if c.SourceFloorBps > 0 && c.SourceFloorGrace <= 0 {
		return bad("source_floor_grace %s: must be positive while source_floor_bps is set, e.g. 5s", c.SourceFloorGrace)
	}
	if c.SourceFloorFraction < 0 || c.SourceFloorFraction >= 1 {
		return bad("source_floor_fraction %g: must be at least 0 and below 1, e.g. 0.05", c.SourceFloorFraction)
	}
	if c.MaxPackageBytes <= 0 {
		return bad("max_package_bytes %d: must be positive", c.MaxPackageBytes)
	}
	if c.CacheQuota < 0 {
		return bad("cache_quota %d: must be >= 0 (0 = unlimited)", c.CacheQuota)
	}
	if c.MaxUploadBps < 0 {
		return bad("max_upload_bps %d: must be >= 0 (0 = unlimited)", c.MaxUploadBps)
	}
	if c.TempDir != "" && !filepath.IsAbs(c.TempDir) {
		return bad("temp_dir %q: must be an absolute path", c.TempDir)
	}
	if err := c.InstallLimits.Validate(); err != nil {
		return bad("install_limits: %v", err)
	}
	if c.ScanInterval < 0 {
		return bad("scan_interval %s: must be >= 0 (0 = no periodic scans)", c.ScanInterval)
	}
	if err := c.Scan.Validate(); err != nil {
		return bad("scan: %v", err)
	}
	return nil
}

// LoadConfig returns DefaultConfig(dir) overlaid with DIR/config.yaml when
// that file exists. Unknown keys are an error, so a typo is not silently
// ignored.
func LoadConfig(dir string) (Config, error) {
	c := DefaultConfig(dir)
	path := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, c.Validate()
	}
	if err != nil {
		return c, fmt.Errorf("node: read config: %w", err)
	}
	if err := units.DecodeYAML(data, &c); err != nil {
		return c, fmt.Errorf("%w: %s: %w", ErrBadConfig, path, err)
	}
	c.Dir = dir
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c Config) tempDir() string {
	if c.TempDir != "" {
		return c.TempDir
	}
	return filepath.Join(c.Dir, "tmp")
}
