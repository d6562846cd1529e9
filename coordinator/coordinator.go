package coordinator

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/coordinator/aptmirror"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
	"golang.org/x/time/rate"
)

func peerIDOf(k crypto.PrivKey) (string, error) {
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// Counters are the coordinator's running totals of dropped and applied
// status reports, by reason.
type Counters struct {
	Applied      atomic.Int64
	Duplicate    atomic.Int64
	BadSignature atomic.Int64
	UnknownOrder atomic.Int64
	NotEnrolled  atomic.Int64
	Malformed    atomic.Int64
}

// Coordinator is the admin's server.
type Coordinator struct {
	cfg        Config
	log        *slog.Logger
	now        func() time.Time
	st         *state
	store      *cache.Badger
	orderKey   ed25519.PrivateKey
	adminToken string
	gossipKeys [][]byte
	identity   crypto.PrivKey
	peerID     string // identity's peer ID, known before Start

	host     host.Host
	gater    *p2p.Gater
	meter    *p2p.Meter
	counters Counters

	offload *offload
	lists   memberLists
	revLog  revokedLog
	mirror  *aptmirror.Mirror

	fleetVersions string    // the set noteVersionsLocked last saw; under st.mu
	started       time.Time // when Start ran

	api      *http.Server
	apiAddr  string
	pushq    chan pushJob
	pushMu   sync.Mutex
	pushing  map[string]bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once
}

// Open loads the coordinator's keys and state from cfg.Dir without
// touching the network. Start brings the network up.
func Open(cfg Config) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Coordinator{cfg: cfg, log: cfg.Logger, now: cfg.Now, pushing: map[string]bool{}, offload: newOffload(cfg.RedirectBusy)}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	dir := cfg.Dir
	var err error
	if c.mirror, err = aptmirror.New(cfg.Apt, filepath.Join(dir, "mirror")); err != nil {
		return nil, err
	}
	if c.orderKey, err = core.ReadPrivateKey(filepath.Join(dir, FileOrderKey)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s: run 'relaymesh coordinator init --dir %s' first", ErrNotInitialised, dir, dir)
		}
		return nil, err
	}
	if c.identity, err = p2p.ReadIdentity(filepath.Join(dir, FileIdentity)); err != nil {
		return nil, err
	}
	if c.peerID, err = peerIDOf(c.identity); err != nil {
		return nil, err
	}
	tok, err := core.ReadSecretFile(filepath.Join(dir, FileAdminToken))
	if err != nil {
		return nil, err
	}
	c.adminToken = strings.TrimSpace(string(tok))
	if len(c.adminToken) < 16 {
		return nil, fmt.Errorf("%w: %s: token shorter than 16 characters", ErrBadConfig, FileAdminToken)
	}
	gk, err := core.ReadSecretFile(filepath.Join(dir, FileGossipKey))
	if err != nil {
		return nil, err
	}
	var keys []string
	if err := json.Unmarshal(gk, &keys); err != nil || len(keys) == 0 {
		return nil, fmt.Errorf("%w: %s: want a JSON list of base64 keys", ErrBadConfig, FileGossipKey)
	}
	for _, k := range keys {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("%w: %s: each key must be 32 bytes of base64", ErrBadConfig, FileGossipKey)
		}
		c.gossipKeys = append(c.gossipKeys, b)
	}
	cc := cache.DefaultConfig(filepath.Join(dir, DirState))
	cc.Logger = c.log
	if c.store, err = cache.OpenBadger(cc); err != nil {
		return nil, fmt.Errorf("coordinator: open state: %w", err)
	}
	if c.st, err = loadState(c.store.KV()); err != nil {
		c.store.Close()
		return nil, err
	}
	c.noteVersionsLocked()
	return c, nil
}

// OrderPublicKey is the key nodes pin.
func (c *Coordinator) OrderPublicKey() ed25519.PublicKey {
	return c.orderKey.Public().(ed25519.PublicKey)
}

// Counters returns the report counters.
func (c *Coordinator) Counters() *Counters { return &c.counters }

// Host returns the libp2p host (nil before Start).
func (c *Coordinator) Host() host.Host { return c.host }

// Meter returns the byte accounting (nil before Start).
func (c *Coordinator) Meter() *p2p.Meter { return c.meter }

// AdminURL returns the admin API's base URL (empty before Start).
func (c *Coordinator) AdminURL() string { return c.apiAddr }

// AdminToken returns the admin API's bearer token.
func (c *Coordinator) AdminToken() string { return c.adminToken }

// P2PAddrs returns the coordinator's dialable multiaddrs with /p2p/.
func (c *Coordinator) P2PAddrs() []string {
	info := p2p.AddrInfo(c.host)
	out := make([]string, 0, len(info.Addrs))
	for _, a := range info.Addrs {
		out = append(out, a.String()+"/p2p/"+info.ID.String())
	}
	return out
}

// Start brings up the libp2p host, its protocols, the admin API and the
// background loops. Close stops them.
func (c *Coordinator) Start(ctx context.Context) error {
	ctx, c.cancel = context.WithCancel(ctx)
	c.started = c.now()
	c.gater = &p2p.Gater{Open: true}
	c.meter = &p2p.Meter{Classify: c.classify}
	h, err := p2p.NewHost(p2p.HostConfig{
		ListenAddrs: c.cfg.Listen, Identity: c.identity, Gater: c.gater, Enrolled: c.enrolled, Logger: c.log, Meter: c.meter,
		Network: c.cfg.Network,
	})
	if err != nil {
		return fmt.Errorf("coordinator: libp2p host: %w", err)
	}
	c.host = h
	var lim *rate.Limiter
	if c.cfg.MaxUploadBps > 0 {
		lim = rate.NewLimiter(rate.Limit(c.cfg.MaxUploadBps), 256<<10)
	}
	if err := p2p.ServeFragments(h, p2p.FragmentServerConfig{
		// c.meter already counts every stream byte at the host.
		Source: countingSource{c.store, c.offload}, Authorize: c.enrolled, Limiter: lim, Logger: c.log,
		Redirect: c.redirect, Served: c.served,
	}); err != nil {
		h.Close()
		return err
	}
	c.registerProtocols()

	if !c.cfg.NoAdminAPI {
		if err := c.startAdmin(ctx); err != nil {
			h.Close()
			return err
		}
	}
	if err := core.WriteFileAtomic(filepath.Join(c.cfg.Dir, FileP2PAddrs), []byte(strings.Join(c.P2PAddrs(), "\n")+"\n"), 0o644); err != nil {
		c.Close()
		return err
	}
	c.pushq = make(chan pushJob, 1<<16)
	for range c.cfg.PushConcurrency {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.pushLoop(ctx) }()
	}
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.sweepLoop(ctx) }()
	c.log.Info("coordinator up", "peer", h.ID().String(), "p2p", c.P2PAddrs(), "admin", c.apiAddr)
	return nil
}

// startAdmin serves the admin API on AdminAddr and writes admin.addr.
func (c *Coordinator) startAdmin(ctx context.Context) error {
	ln, err := net.Listen("tcp", c.cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("coordinator: admin API on %s: %w", c.cfg.AdminAddr, err)
	}
	scheme := "http"
	if c.cfg.TLSCert != "" {
		scheme = "https"
	}
	c.apiAddr = scheme + "://" + ln.Addr().String()
	// Requests' contexts end with the coordinator's, so long-lived ones
	// (the console's event streams) let Close's Shutdown finish.
	c.api = &http.Server{Handler: c.apiHandler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return ctx }}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		var err error
		if c.cfg.TLSCert != "" {
			err = c.api.ServeTLS(ln, c.cfg.TLSCert, c.cfg.TLSKey)
		} else {
			err = c.api.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("admin API stopped", "err", err)
		}
	}()
	if err := core.WriteFileAtomic(filepath.Join(c.cfg.Dir, FileAdminAddr), []byte(c.apiAddr+"\n"), 0o644); err != nil {
		c.api.Close()
		return err
	}
	return nil
}

// Close stops everything Start started and closes the state.
func (c *Coordinator) Close() error {
	c.once.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
		var errs []error
		if c.api != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			errs = append(errs, c.api.Shutdown(sctx))
			cancel()
		}
		if c.host != nil {
			errs = append(errs, c.host.Close())
		}
		c.wg.Wait()
		errs = append(errs, c.store.Close())
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// Run opens the coordinator, serves until ctx ends, then shuts down.
func Run(ctx context.Context, cfg Config) error {
	c, err := Open(cfg)
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		c.Close()
		return err
	}
	<-ctx.Done()
	c.log.Info("coordinator shutting down")
	return c.Close()
}

func (c *Coordinator) enrolled(p peer.ID) bool {
	_, ok := c.st.known.Load(p.String())
	return ok
}

func (c *Coordinator) classify(p peer.ID) p2p.Class {
	if c.enrolled(p) {
		return p2p.ClassOtherSite // every node is outside the coordinator's site
	}
	return p2p.ClassUnknown
}
