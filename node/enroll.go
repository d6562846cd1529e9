package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/version"
	"github.com/relaymesh/relaymesh/p2p"
)

// EnrollOptions configures Enroll.
type EnrollOptions struct {
	// Dir is the node directory to create; it must not be enrolled yet.
	Dir string
	// Coordinator is the coordinator's multiaddr ending in /p2p/<peer ID>.
	Coordinator string
	// Token is the one-time join token the admin created.
	Token string
	// Name is the node's name; empty means the hostname.
	Name string
	// Listen are the addresses the node will listen on; nil means
	// DefaultListen. Advertise, when set, is what peers dial instead (see
	// Config.Advertise). The coordinator is told the advertised addresses.
	// The caller keeps them for node run with SaveSettings.
	Listen    []string
	Advertise []string
	// Network is the network the enrollment exchange runs on; nil means
	// TCP (see Config.Network).
	Network p2p.Network
	// Timeout bounds one try of the exchange with the coordinator
	// (connect and enrollment call); 0 means 30s.
	Timeout time.Duration
	// RetryFor is how long Enroll keeps trying while the coordinator
	// cannot be reached or does not answer (dial failures, timeouts, reset
	// streams, a stream closed without an answer): it waits 1s, doubling
	// to 60s, between tries, each wait jittered to between half and all
	// of it, and makes no try after RetryFor has passed since the first
	// (the try under way then may still take its Timeout). 0 means
	// DefaultEnrollRetryFor (5 minutes); a negative value tries once.
	// Definitive answers are never retried: the coordinator's refusal
	// (a bad, used or expired token: ErrEnrollRefused), an answer that
	// does not fit (ErrBadEnrollment, a response over the size limit),
	// config errors (ErrBadConfig). ctx ends the retrying at any time.
	RetryFor time.Duration
	// Logger receives progress logs, and each failed try at warn; nil
	// discards them.
	Logger *slog.Logger

	// Test hooks. now is the clock (nil: time.Now); sleep waits d or
	// until ctx ends and reports whether d passed (nil: a real wait);
	// rand is jitter's source of floats in [0, 1) (nil: math/rand/v2).
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) bool
	rand  func() float64
}

// DefaultEnrollRetryFor is how long Enroll retries an unreachable
// coordinator when EnrollOptions.RetryFor is 0.
const DefaultEnrollRetryFor = 5 * time.Minute

// The waits between enrollment tries: enrollRetryMin doubling to
// enrollRetryMax, each jittered (see jitter).
const (
	enrollRetryMin = time.Second
	enrollRetryMax = time.Minute
)

// Version is the node version reported to the coordinator: this build's
// (internal/version).
var Version = version.String()

// maxEnrollResponse bounds the coordinator's answer to an enrollment.
const maxEnrollResponse = 4 << 20

// Enroll makes opts.Dir a node directory: it creates a node identity,
// presents the join token to the coordinator and, once the coordinator
// accepted it, writes the identity (mode 0600), gossip.keys (0600) and
// node.json, in that order, node.json last and atomically. On any error
// nothing is left behind: node.json is absent and the files Enroll created
// are removed. An already enrolled directory is refused. A coordinator
// that cannot be reached is retried with jittered backoff for
// opts.RetryFor (see EnrollOptions).
func Enroll(ctx context.Context, opts EnrollOptions) (*Enrollment, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("%w: enroll: Dir is empty", ErrBadConfig)
	}
	if opts.Token == "" {
		return nil, fmt.Errorf("%w: enroll: token is empty: ask the admin for a join token", ErrBadConfig)
	}
	coord, err := p2p.ParseAddrInfo(opts.Coordinator)
	if err != nil {
		return nil, fmt.Errorf("%w: enroll: coordinator: %w", ErrBadConfig, err)
	}
	if _, err := os.Stat(filepath.Join(opts.Dir, EnrollmentFile)); err == nil {
		return nil, fmt.Errorf("%w: %s already holds %s: use another directory, or remove it to enroll again",
			ErrAlreadyEnrolled, opts.Dir, EnrollmentFile)
	}
	if opts.Name == "" {
		opts.Name, _ = os.Hostname()
	}
	if opts.Listen == nil {
		opts.Listen = []string{DefaultListen}
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.RetryFor == 0 {
		opts.RetryFor = DefaultEnrollRetryFor
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	id, err := p2p.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	gater := &p2p.Gater{}
	gater.Allow(coord.ID)
	h, err := p2p.NewHost(p2p.HostConfig{ListenAddrs: []string{}, Identity: id, Gater: gater, Logger: log, Network: opts.Network})
	if err != nil {
		return nil, err
	}
	defer func() { _ = h.Close() }()

	req := &core.EnrollRequest{Token: opts.Token, Info: core.NodeInfo{
		Hostname: opts.Name, OS: runtime.GOOS, Arch: runtime.GOARCH, Version: Version, Addrs: enrollAddrs(opts, coord),
	}}
	resp, err := enrollRetrying(ctx, h, coord, req, opts, log)
	if err != nil {
		return nil, err
	}
	e := &Enrollment{
		NodeID: resp.NodeID, Name: opts.Name, Site: resp.Site, Tags: resp.Tags,
		Coordinator: opts.Coordinator, CoordinatorID: coord.ID.String(),
		OrderKeys: resp.OrderKeys, SiteMembers: resp.SiteMembers, EnrolledAt: time.Now().UTC(),
		MaxOrderLifetime: resp.MaxOrderLifetime, MemberList: resp.MemberList,
	}
	if e.NodeID != h.ID().String() {
		return nil, fmt.Errorf("%w: coordinator enrolled node %q, this node is %s", ErrBadEnrollment, resp.NodeID, h.ID())
	}
	if resp.Coordinator != "" && resp.Coordinator != coord.ID.String() {
		return nil, fmt.Errorf("%w: coordinator says it is %s, dialed %s", ErrBadEnrollment, resp.Coordinator, coord.ID)
	}
	for i, k := range resp.GossipKeys {
		if len(k) != 32 {
			return nil, fmt.Errorf("%w: gossip key %d has %d bytes, want 32", ErrBadEnrollment, i, len(k))
		}
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if err := writeNodeDir(opts.Dir, id, resp.GossipKeys, e); err != nil {
		return nil, err
	}
	log.Info("enrolled", "node", e.NodeID, "site", e.Site, "dir", opts.Dir)
	return e, nil
}

// enrollRetrying presents req to coord, trying again after a transient
// failure with jittered backoff, for opts.RetryFor (see EnrollOptions).
func enrollRetrying(ctx context.Context, h host.Host, coord peer.AddrInfo, req *core.EnrollRequest,
	opts EnrollOptions, log *slog.Logger,
) (*core.EnrollResponse, error) {
	now, pause, rnd := opts.now, opts.sleep, opts.rand
	if now == nil {
		now = time.Now
	}
	if pause == nil {
		pause = sleep
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	start := now()
	stopped := func(try int, err error) error {
		cause := context.Cause(ctx)
		if cause == nil { // a sleep hook that gave up on its own
			cause = context.Canceled
		}
		return fmt.Errorf("node: enroll: cannot reach coordinator %s: %w after %s and %s (last error: %v)",
			opts.Coordinator, cause, roundElapsed(now().Sub(start)), tries(try), err)
	}
	for try := 1; ; try++ {
		resp, err := enrollOnce(ctx, h, coord, req, opts.Timeout)
		switch remote, refused := errors.AsType[*p2p.RemoteError](err); {
		case err == nil:
			return resp, nil
		case refused:
			return nil, fmt.Errorf("%w: %s", ErrEnrollRefused, remote.Msg)
		case errors.Is(err, p2p.ErrMsgTooLarge):
			return nil, fmt.Errorf("node: enroll: %w", err)
		case ctx.Err() != nil:
			return nil, stopped(try, err)
		}
		left := opts.RetryFor - now().Sub(start)
		if left <= 0 {
			return nil, fmt.Errorf("node: enroll: cannot reach coordinator %s: gave up after %s and %s: %w",
				opts.Coordinator, roundElapsed(now().Sub(start)), tries(try), err)
		}
		d := min(jitter(backoff(enrollRetryMin, enrollRetryMax, try), rnd), left)
		log.Warn("enroll: coordinator unreachable; will retry", "coordinator", opts.Coordinator,
			"attempt", try, "retry_in", d, "err", err)
		if !pause(ctx, d) {
			return nil, stopped(try, err)
		}
		// The swarm holds back dials to an address that just failed (5s
		// and more); the wait above is the one that counts.
		if sw, ok := h.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
			sw.Backoff().Clear(coord.ID)
		}
	}
}

// enrollOnce is one try: connect to coord and make the enrollment call,
// within timeout.
func enrollOnce(ctx context.Context, h host.Host, coord peer.AddrInfo, req *core.EnrollRequest,
	timeout time.Duration,
) (*core.EnrollResponse, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := h.Connect(cctx, coord); err != nil {
		return nil, err
	}
	return p2p.Call[core.EnrollRequest, core.EnrollResponse](cctx, h, coord.ID, core.ProtoEnroll, req, maxEnrollResponse)
}

// tries is "1 try" or "n tries".
func tries(n int) string {
	if n == 1 {
		return "1 try"
	}
	return fmt.Sprintf("%d tries", n)
}

// roundElapsed rounds d for a message: to the second, or to the
// millisecond under a second.
func roundElapsed(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

// writeNodeDir writes the enrolled node's files, node.json last; on error
// it removes what it wrote (and the directory, when it created it).
func writeNodeDir(dir string, id crypto.PrivKey, gossip [][]byte, e *Enrollment) (err error) {
	_, statErr := os.Stat(dir)
	created := errors.Is(statErr, fs.ErrNotExist)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("node: enroll: %w", err)
	}
	var written []string
	defer func() {
		if err == nil {
			return
		}
		for _, p := range written {
			_ = os.Remove(p)
		}
		if created {
			_ = os.Remove(dir) // only if empty
		}
	}()
	idPath := filepath.Join(dir, IdentityFile)
	if err := p2p.WriteIdentity(idPath, id); err != nil {
		return fmt.Errorf("node: enroll: %w", err)
	}
	written = append(written, idPath)
	gkPath := filepath.Join(dir, GossipKeysFile)
	if err := writeGossipKeys(dir, gossip); err != nil {
		return fmt.Errorf("node: enroll: write %s: %w", gkPath, err)
	}
	written = append(written, gkPath)
	if err := writeEnrollment(dir, e); err != nil {
		return fmt.Errorf("node: enroll: write %s: %w", EnrollmentFile, err)
	}
	return nil
}
