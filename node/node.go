package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/time/rate"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node/mesh"
	"github.com/relaymesh/relaymesh/node/runner"
	"github.com/relaymesh/relaymesh/node/site"
	"github.com/relaymesh/relaymesh/p2p"
)

// Installer runs one order's installs; *runner.Runner is the real one.
type Installer interface {
	Install(ctx context.Context, req runner.Request, onStart func(pkg string), onResult func(runner.Result)) ([]runner.Result, bool)
}

var _ Installer = (*runner.Runner)(nil)

// Node is a running node daemon. Start one with Start, stop it with Close.
type Node struct {
	cfg   Config
	log   *slog.Logger
	logs  *logRing // the newest records of log, for ProtoLogs
	enr   *Enrollment
	ident crypto.PrivKey

	store    StoreKV
	kv       cache.KV
	seqs     seqStore
	verifier *core.Verifier
	out      *outbox
	inst     Installer

	orphanDetail map[string]string // by order: what reapOrphans found of its install

	h     host.Host
	adv   *advertiser
	gater *p2p.Gater
	coord peer.AddrInfo

	intakeMu sync.Mutex // serialises order intake
	// skewSaid holds the envelope digest of each order reported as not
	// yet valid, under intakeMu: one report per order, not one per sync.
	skewSaid map[string]string
	lastRTT  atomic.Int64 // the previous sync's round trip, ns
	jobsMu   sync.Mutex
	jobs     map[string]*job // deploy jobs not finished yet, by order ID
	dl       *slots          // download slots, by priority
	install  *slots          // the install slot

	// The site: see sitewire.go.
	meter      *p2p.Meter // every stream byte, by peer class
	fragMeter  *p2p.Meter // fragment payload only
	mesh       *mesh.Mesh
	members    atomic.Pointer[site.Membership]
	started    int64
	wasRelay   atomic.Bool
	siteMu     sync.Mutex
	sitePeers  map[peer.ID]bool
	relayConns relayConns
	reach      reachability

	// The coordinator's member list: see members.go.
	listMu       sync.Mutex // serialises adoptMemberList
	listed       atomic.Pointer[listed]
	unlistedMu   sync.Mutex
	unlistedSeen map[string]bool // unlisted IDs seen since the last list
	unlistedSync time.Time       // the last early sync they asked for
	measuredMu   sync.Mutex
	lastMeasured []site.Measurement // as last gossiped (republishMeasured)

	ring gossipState // the gossip keyring held: see gossipkeys.go

	syncKick chan struct{}
	scanWake chan struct{} // a scan order was accepted
	lost     atomic.Bool   // the coordinator connection was lost

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	goMu    sync.Mutex
	closing bool
	closed  sync.Once
}

// Run runs a node until ctx ends, then shuts it down cleanly and returns
// nil (or the shutdown's error).
func Run(ctx context.Context, cfg Config) error {
	n, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return n.Close()
}

// Start opens the node in cfg.Dir (which enroll wrote) and starts it: the
// cache, the libp2p host and its handlers, order intake, the jobs left
// unfinished by the last run, and the status sender. It runs until Close
// or until ctx ends; call Close in both cases.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	enr, err := LoadEnrollment(cfg.Dir)
	if err != nil {
		return nil, err
	}
	ident, err := p2p.ReadIdentity(filepath.Join(cfg.Dir, IdentityFile))
	if err != nil {
		return nil, err
	}
	keys, err := enr.orderKeys()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadEnrollment, err)
	}
	logs := newLogRing(core.MaxLogRecords)
	log := slog.New(teeHandler{cfg.logger().Handler(), &ringHandler{ring: logs}}).With("node", shortID(enr.NodeID))
	n := &Node{
		cfg: cfg, log: log, logs: logs, enr: enr, ident: ident, coord: enr.coordinator(),
		jobs: map[string]*job{}, dl: newSlots(cfg.ParallelDownloads), install: newSlots(1),
		syncKick: make(chan struct{}, 1), scanWake: make(chan struct{}, 1), sitePeers: map[peer.ID]bool{},
	}
	n.meter = &p2p.Meter{Classify: n.classify}
	n.fragMeter = &p2p.Meter{Classify: n.classify}
	n.lost.Store(true)
	n.ctx, n.cancel = context.WithCancel(ctx)
	defer func() {
		if err != nil {
			_ = n.Close()
		}
	}()

	if err := os.MkdirAll(filepath.Join(cfg.Dir, cacheSubdir), 0o700); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if cfg.Store != nil {
		n.store = cfg.Store
	} else {
		cc := cache.DefaultConfig(filepath.Join(cfg.Dir, cacheSubdir))
		cc.QuotaBytes, cc.Logger = cfg.CacheQuota, log
		b, err := cache.OpenBadger(cc)
		if err != nil {
			return nil, err
		}
		n.store = b
	}
	n.kv = n.store.KV()
	n.seqs = seqStore{n.kv}
	n.verifier = &core.Verifier{Keys: core.PinnedKeys(keys...), Self: enr.NodeID, Seq: n.seqs, Now: cfg.now,
		MaxLifetime: enr.maxOrderLifetime()}
	n.out = newOutbox(n.kv, p2p.Ed25519Raw(ident), n.verifier.Keys, enr.NodeID, cfg, log)
	if n.inst = cfg.Installer; n.inst == nil {
		rc := runner.Config{
			TempDir: cfg.tempDir(), Limits: cfg.InstallLimits, RebootCommand: cfg.RebootCommand,
			DebInstall: cfg.DebInstall, DebRemove: cfg.DebRemove,
			AptInstall: cfg.AptInstall, AptLists: cfg.Scan.ListsDir(), AptArchives: cfg.Scan.ArchivesDir(), AptCheck: n.aptCheck,
			RebootRequiredFile: cfg.Scan.RebootRequired, DpkgStatus: filepath.Join(cfg.Scan.DpkgAdmindir, "status"),
			Env:    []string{"RELAYMESH_NODE_ID=" + enr.NodeID, "RELAYMESH_NODE_NAME=" + enr.Name},
			Logger: log, Started: n.recordStarted,
		}
		if n.inst, err = runner.New(rc, refetchingStore{n}, installedKV{n.kv}); err != nil {
			return nil, err
		}
	}

	n.gater = &p2p.Gater{}
	n.gater.Allow(n.coord.ID)
	if err := n.loadMemberList(); err != nil {
		return nil, err
	}
	if n.adv, err = newAdvertiser(cfg.Advertise, n.coord); err != nil {
		return nil, err
	}
	hc := p2p.HostConfig{ListenAddrs: cfg.Listen, Identity: ident, Gater: n.gater, Logger: log, Meter: n.meter, Network: cfg.Network}
	if len(cfg.Advertise) > 0 || listensUnspecified(cfg.Listen) {
		hc.AddrsFactory = n.adv.addrs
	}
	if n.h, err = p2p.NewHost(hc); err != nil {
		return nil, err
	}
	if n.h.ID().String() != enr.NodeID {
		return nil, fmt.Errorf("%w: identity is peer %s, node.json says %s", ErrBadEnrollment, n.h.ID(), enr.NodeID)
	}
	n.h.Peerstore().AddAddrs(n.coord.ID, n.coord.Addrs, peerstore.PermanentAddrTTL)
	n.h.Network().Notify(n.notifiee())
	// Before any order can arrive (site gossip, pushes): end what a crash
	// left running and clear its temp dirs.
	if err := n.reapOrphans(); err != nil {
		return nil, err
	}
	if err := n.startSite(); err != nil {
		return nil, err
	}
	if err := n.resumeJobs(); err != nil {
		return nil, err
	}
	n.settleGossip(nil) // gossip-key orders a stop interrupted
	p2p.Handle(n.h, core.ProtoOrders, maxPushRequest, n.handlePush)
	p2p.Handle(n.h, core.ProtoStatus, maxStatusRequest, n.relayForwardStatus)
	p2p.HandleAdmitted(n.h, core.ProtoLogs, core.MaxLogRequest, n.fromCoordinator, n.handleLogs)
	var lim *rate.Limiter
	if cfg.MaxUploadBps > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.MaxUploadBps), int(min(cfg.MaxUploadBps, 1<<20)))
	}
	if err := p2p.ServeFragments(n.h, p2p.FragmentServerConfig{
		Source: n.fragmentSource(), Authorize: n.gater.Allowed, Limiter: lim, Meter: n.fragMeter,
		Logger: log, Redirect: n.mesh.Redirect, Served: n.mesh.Served,
	}); err != nil {
		return nil, err
	}

	n.spawn(func() { n.out.run(n.ctx, n.sendStatus) })
	n.spawn(n.syncLoop)
	n.spawn(n.scanLoop)
	n.checkAdvertised()
	log.Info("node started", "listen", n.h.Network().ListenAddresses(), "advertise", n.h.Addrs(), "gossip", n.gossipAddr(), "coordinator", n.coord.ID)
	return n, nil
}

// spawn runs fn on a goroutine the node waits for at Close. It returns
// false, running nothing, once the node is closing.
func (n *Node) spawn(fn func()) bool {
	n.goMu.Lock()
	defer n.goMu.Unlock()
	if n.closing {
		return false
	}
	n.wg.Go(fn)
	return true
}

// Close stops the node: it ends every goroutine the node started, waits
// for them, closes the host and the cache. Calling it again does nothing.
func (n *Node) Close() error {
	var errs []error
	n.closed.Do(func() {
		n.goMu.Lock()
		n.closing = true
		n.goMu.Unlock()
		n.cancel()
		if m := n.members.Load(); m != nil {
			errs = append(errs, m.Shutdown())
		}
		if n.h != nil {
			errs = append(errs, n.h.Close())
		}
		n.wg.Wait()
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
		n.log.Info("node stopped")
	})
	return errors.Join(errs...)
}

// ID returns the node's peer ID.
func (n *Node) ID() peer.ID { return n.h.ID() }

// Addrs returns the node's listen addresses.
func (n *Node) Addrs() []ma.Multiaddr { return n.h.Addrs() }

// Host returns the node's libp2p host (for the simulator and site wiring).
func (n *Node) Host() host.Host { return n.h }

// Store returns the node's fragment cache.
func (n *Node) Store() cache.Store { return n.store }

// Enrollment returns what enroll recorded.
func (n *Node) Enrollment() Enrollment { return *n.enr }

func shortID(s string) string {
	if len(s) > 12 {
		return s[len(s)-12:]
	}
	return s
}

// commit runs fn in one KV transaction and wakes the status sender.
func (n *Node) commit(fn func(tx cache.KVTx) error) error {
	if err := n.kv.Update(fn); err != nil {
		return err
	}
	signal(n.out.wake)
	return nil
}

// report stores one status report in the outbox.
func (n *Node) report(s core.Status) {
	if err := n.commit(func(tx cache.KVTx) error { return n.out.add(tx, s) }); err != nil {
		n.log.Error("cannot store status report", "order", s.OrderID, "state", s.State, "err", err)
	}
}
