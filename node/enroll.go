package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/relaymesh/relaymesh/core"
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
	// Timeout bounds the exchange with the coordinator; 0 means 30s.
	Timeout time.Duration
	// Logger receives progress logs; nil discards them.
	Logger *slog.Logger
}

// Version is the node version reported to the coordinator.
var Version = "dev"

// maxEnrollResponse bounds the coordinator's answer to an enrollment.
const maxEnrollResponse = 4 << 20

// Enroll makes opts.Dir a node directory: it creates a node identity,
// presents the join token to the coordinator and, once the coordinator
// accepted it, writes the identity (mode 0600), gossip.keys (0600) and
// node.json, in that order, node.json last and atomically. On any error
// nothing is left behind: node.json is absent and the files Enroll created
// are removed. An already enrolled directory is refused.
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
	h, err := p2p.NewHost(p2p.HostConfig{ListenAddrs: []string{}, Identity: id, Gater: gater, Logger: log})
	if err != nil {
		return nil, err
	}
	defer func() { _ = h.Close() }()

	cctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if err := h.Connect(cctx, coord); err != nil {
		return nil, fmt.Errorf("node: enroll: cannot reach coordinator %s: %w", opts.Coordinator, err)
	}
	req := &core.EnrollRequest{Token: opts.Token, Info: core.NodeInfo{
		Hostname: opts.Name, OS: runtime.GOOS, Arch: runtime.GOARCH, Version: Version, Addrs: enrollAddrs(opts, coord),
	}}
	resp, err := p2p.Call[core.EnrollRequest, core.EnrollResponse](cctx, h, coord.ID, core.ProtoEnroll, req, maxEnrollResponse)
	if remote, ok := errors.AsType[*p2p.RemoteError](err); ok {
		return nil, fmt.Errorf("%w: %s", ErrEnrollRefused, remote.Msg)
	}
	if err != nil {
		return nil, fmt.Errorf("node: enroll: %w", err)
	}
	e := &Enrollment{
		NodeID: resp.NodeID, Name: opts.Name, Site: resp.Site, Tags: resp.Tags,
		Coordinator: opts.Coordinator, CoordinatorID: coord.ID.String(),
		OrderKeys: resp.OrderKeys, SiteMembers: resp.SiteMembers, EnrolledAt: time.Now().UTC(),
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
