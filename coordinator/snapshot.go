package coordinator

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/version"
	"github.com/relaymesh/relaymesh/p2p"
)

// Snapshots (relaymesh coordinator snapshot save|restore).
//
// The state (nodes, tokens, packages and their fragments, deployments,
// rows, scans, counters) is read from the running coordinator over the
// admin API, at one moment: the coordinator's state lock is held while the
// read transaction starts, so no multi-transaction write is half in it.
// The key files and config.yaml are read by the CLI from the coordinator's
// directory on its host, not served by the API: a holder of the admin token
// can deploy, but cannot carry the order key away.
//
// A restore goes into a directory that does not exist yet (or is empty),
// through a temporary sibling renamed into place only once the whole file
// checked out and the restored coordinator opened: a failed restore leaves
// nothing.

// snapshotKeyFiles are the files of the coordinator's directory a
// snapshot carries: what a fresh machine needs to be the same coordinator
// to its nodes (they pinned the order key and dial the identity's peer ID)
// and to its admins (the token, the config). admin.addr and p2p.addrs are
// written by serve.
var snapshotKeyFiles = []string{FileIdentity, FileOrderKey, FileOrderPub, FileAdminToken, FileGossipKey, FileConfig}

// snapshotRequired are the files a restore cannot do without.
var snapshotRequired = []string{FileIdentity, FileOrderKey, FileOrderPub, FileAdminToken, FileGossipKey}

// RestoreSeqGap is how far a restore moves the order sequence and the
// membership version past the snapshot's: orders signed and member lists
// sent after the snapshot was taken are known to nodes, and the restored
// coordinator must not sign new ones with the same numbers (nodes would
// refuse them as replays, or keep their newer list). It stays well inside
// core.ReplayWindow, so orders from before the snapshot still arrive.
const RestoreSeqGap = 1 << 12

// WriteSnapshot writes a snapshot of the state, without key files, to w.
func (c *Coordinator) WriteSnapshot(ctx context.Context, w io.Writer) (SnapshotInfo, error) {
	c.st.mu.RLock()
	snap, err := c.store.Snapshot()
	c.st.mu.RUnlock()
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("coordinator: snapshot: %w", err)
	}
	defer snap.Close()
	info := SnapshotInfo{Created: c.now().UTC(), PeerID: c.peerID, OrderKey: core.KeyID(c.OrderPublicKey()), Version: version.String()}
	sw := newSnapWriter(w)
	if err := sw.header(info); err != nil {
		return info, err
	}
	err = snap.Each(func(k, v []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return sw.entry(k, v)
	})
	if err == nil {
		err = sw.end()
	}
	info.Entries = int64(sw.entries)
	if err != nil {
		return info, fmt.Errorf("coordinator: snapshot: %w", err)
	}
	c.log.Info("snapshot taken", "entries", sw.entries)
	return info, nil
}

func (c *Coordinator) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(headerPeer, c.peerID)
	w.WriteHeader(http.StatusOK)
	if _, err := c.WriteSnapshot(r.Context(), w); err != nil {
		// The status is out; the reader sees no end frame and refuses.
		c.log.Warn("snapshot stream broken", "err", err)
	}
}

const headerPeer = "X-Relaymesh-Peer"

// SaveSnapshot writes to w a complete snapshot of the coordinator whose
// directory is dir: its state over the admin API, its key files and config
// from dir. It refuses a dir whose identity is not the answering
// coordinator's.
func (cl *Client) SaveSnapshot(ctx context.Context, dir string, w io.Writer) (SnapshotInfo, error) {
	files := map[string][]byte{}
	for _, name := range snapshotKeyFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) && !slices.Contains(snapshotRequired, name) {
			continue
		}
		if err != nil {
			return SnapshotInfo{}, fmt.Errorf("snapshot: %w (run it on the coordinator's host, as its user)", err)
		}
		files[name] = b
	}
	id, err := p2p.ReadIdentity(filepath.Join(dir, FileIdentity))
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot: %w", err)
	}
	pid, err := peerIDOf(id)
	if err != nil {
		return SnapshotInfo{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cl.BaseURL+"/v1/snapshot", nil)
	if err != nil {
		return SnapshotInfo{}, err
	}
	req.Header.Set("Authorization", "Bearer "+cl.Token)
	hc := *cl.HTTP
	hc.Timeout = 0 // a snapshot of a big cache takes as long as it takes; ctx bounds it
	resp, err := hc.Do(req)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("coordinator at %s: %w", cl.BaseURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode == http.StatusUnauthorized {
			return SnapshotInfo{}, fmt.Errorf("%w: %s", ErrUnauthorized, b)
		}
		return SnapshotInfo{}, fmt.Errorf("coordinator: snapshot: %s: %s", resp.Status, b)
	}
	if got := resp.Header.Get(headerPeer); got != pid {
		return SnapshotInfo{}, fmt.Errorf("%w: the coordinator at %s is %s, but %s holds the keys of %s: give the directory of the coordinator you snapshot",
			ErrConflict, cl.BaseURL, got, dir, pid)
	}
	sr, err := newSnapReader(resp.Body)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot stream from %s: %w", cl.BaseURL, err)
	}
	info := sr.info
	info.Keys = true
	sw := newSnapWriter(w)
	if err := sw.header(info); err != nil {
		return info, err
	}
	for _, name := range snapshotKeyFiles {
		if b, ok := files[name]; ok {
			if err := sw.file(name, b); err != nil {
				return info, err
			}
		}
	}
	for {
		kind, k, v, err := sr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return info, fmt.Errorf("snapshot stream from %s: %w", cl.BaseURL, err)
		}
		if kind != frameEntry {
			return info, fmt.Errorf("snapshot stream from %s: %w", cl.BaseURL, bad("unexpected %q frame", kind))
		}
		if err := sw.entry(k, v); err != nil {
			return info, err
		}
	}
	if err := sw.end(); err != nil {
		return info, err
	}
	info.Files, info.Entries = int(sw.files), int64(sw.entries)
	return info, nil
}

// RestoreResult tells what a restore wrote.
type RestoreResult struct {
	Info        SnapshotInfo `json:"snapshot"`
	Dir         string       `json:"dir"`
	Nodes       int          `json:"nodes"`
	Packages    int          `json:"packages"`
	Deployments int          `json:"deployments"`
	OrderSeq    uint64       `json:"order_seq"` // the next order's sequence is above it
}

// RestoreSnapshot restores the snapshot r into dir, which must not exist
// or be empty. Nothing is left in dir, or beside it, when it fails.
func RestoreSnapshot(r io.Reader, dir string, log *slog.Logger) (res RestoreResult, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir = filepath.Clean(dir)
	// An empty target (the directory a package made for the coordinator's
	// user) gives the restored tree its owner and mode when root restores.
	uid, gid, owned := ownerOf(dir)
	mode := os.FileMode(0o700)
	if st, err := os.Stat(dir); err == nil {
		mode = st.Mode().Perm()
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return res, fmt.Errorf("%w: %s is not empty: restore into a new directory (the snapshot replaces a whole coordinator)", ErrConflict, dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, err
	}
	sr, err := newSnapReader(r)
	if err != nil {
		return res, err
	}
	if !sr.info.Keys {
		return res, bad("it holds the state without the coordinator's keys (an admin API stream, not a file saved by 'relaymesh coordinator snapshot save')")
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return res, err
	}
	suffix := make([]byte, 6)
	rand.Read(suffix)
	tmp := filepath.Join(parent, "."+filepath.Base(dir)+".restore-"+hex.EncodeToString(suffix))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	ld, err := cache.NewLoader(filepath.Join(tmp, DirState), log)
	if err != nil {
		return res, err
	}
	loading := true
	defer func() {
		if loading {
			ld.Abort()
		}
	}()
	seen := map[string]bool{}
	for {
		kind, name, data, err := sr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, err
		}
		switch kind {
		case frameFile:
			n := string(name)
			if !slices.Contains(snapshotKeyFiles, n) || seen[n] {
				return res, bad("file %q: not one a snapshot holds, or twice", n)
			}
			seen[n] = true
			if err := core.WriteFileAtomic(filepath.Join(tmp, n), data, 0o600); err != nil {
				return res, err
			}
		case frameEntry:
			if err := ld.Set(name, data); err != nil {
				return res, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
			}
		}
	}
	loading = false
	if err := ld.Finish(); err != nil {
		return res, fmt.Errorf("coordinator: restore state: %w", err)
	}
	for _, n := range snapshotRequired {
		if !seen[n] {
			return res, bad("it lacks %s", n)
		}
	}
	if err := checkRestoredKeys(tmp, sr.info); err != nil {
		return res, err
	}
	seq, err := bumpRestored(tmp, log)
	if err != nil {
		return res, err
	}
	// Open it as serve would: keys, state and config must load.
	cfg, err := LoadConfig(tmp)
	if err != nil {
		return res, fmt.Errorf("coordinator: restored config: %w", err)
	}
	cfg.Logger = log
	c, err := Open(cfg)
	if err != nil {
		return res, fmt.Errorf("coordinator: restored directory does not open: %w", err)
	}
	c.st.mu.RLock()
	res = RestoreResult{Info: sr.info, Dir: dir, Nodes: len(c.st.nodes), Packages: len(c.st.packages), Deployments: len(c.st.deps), OrderSeq: seq}
	c.st.mu.RUnlock()
	if err := c.Close(); err != nil {
		return res, err
	}
	if owned && os.Geteuid() == 0 && (uid != 0 || gid != 0) {
		if err := chownTree(tmp, uid, gid); err != nil {
			return res, fmt.Errorf("coordinator: restore: give the files to the owner of %s: %w", dir, err)
		}
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return res, err
	}
	os.Remove(dir) // an empty directory given as the target
	if err := os.Rename(tmp, dir); err != nil {
		return res, err
	}
	if d, err := os.Open(parent); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return res, nil
}

// checkRestoredKeys makes sure the key files are the header's coordinator.
func checkRestoredKeys(dir string, info SnapshotInfo) error {
	id, err := p2p.ReadIdentity(filepath.Join(dir, FileIdentity))
	if err != nil {
		return bad("%s: %v", FileIdentity, err)
	}
	pid, err := peerIDOf(id)
	if err != nil || pid != info.PeerID {
		return bad("%s is peer %s, the header says %s", FileIdentity, pid, info.PeerID)
	}
	k, err := core.ReadPrivateKey(filepath.Join(dir, FileOrderKey))
	if err != nil {
		return bad("%s: %v", FileOrderKey, err)
	}
	if got := core.KeyID(k.Public().(ed25519.PublicKey)); got != info.OrderKey {
		return bad("%s is key %s, the header says %s", FileOrderKey, got, info.OrderKey)
	}
	return nil
}

// bumpRestored moves the order sequence and the membership version
// RestoreSeqGap past the snapshot's, and returns the new order sequence.
func bumpRestored(dir string, log *slog.Logger) (uint64, error) {
	cc := cache.DefaultConfig(filepath.Join(dir, DirState))
	cc.Logger = log
	cc.GCInterval = 0
	b, err := cache.OpenBadger(cc)
	if err != nil {
		return 0, fmt.Errorf("coordinator: restore: %w", err)
	}
	kv := b.KV()
	var seq uint64
	err = kv.Update(func(tx cache.KVTx) error {
		for _, key := range []string{keySeq, keyMembers} {
			var v uint64
			if b, err := tx.Get(key); err == nil && len(b) == 8 {
				v = binary.BigEndian.Uint64(b)
			} else if err != nil && !errors.Is(err, cache.ErrNotFound) {
				return err
			}
			v += RestoreSeqGap
			if key == keySeq {
				seq = v
			}
			if err := tx.Set(key, binary.BigEndian.AppendUint64(nil, v)); err != nil {
				return err
			}
		}
		return nil
	})
	return seq, errors.Join(err, b.Close())
}

// Dir is the coordinator's directory.
func (c *Coordinator) Dir() string { return c.cfg.Dir }
