package cache

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// ErrDiskFull: the filesystem holding the cache has too little free space
// for a write; the write is refused and nothing is lost.
var ErrDiskFull = errors.New("cache: disk full")

// Disk headroom defaults. badger writes through memory-mapped files: a
// write the filesystem has no block for is not an error but a SIGBUS that
// kills the process. So the cache refuses writes before the disk is full:
// fragments while less than ReserveBytes would be left (badger's memtable
// flushes and compactions need that much), KV writes (small: job states,
// status reports, sequences) while less than kvHeadroom is free. A ballast
// file of BallastBytes, allocated while there is room, is given up the
// moment the disk fills, so that the KV writes that report the failure
// still have room; it comes back once space returns.
const (
	DefaultReserveBytes = 64 << 20
	DefaultBallastBytes = 8 << 20
	kvHeadroom          = 1 << 20
	ballastName         = "BALLAST"
)

// diskGuard checks free space before the cache's writes.
type diskGuard struct {
	dir          string
	reserve      int64
	ballastBytes int64
	log          *slog.Logger

	mu      sync.Mutex
	ballast bool // the ballast file is allocated
}

func newDiskGuard(cfg Config, log *slog.Logger) *diskGuard {
	if cfg.InMemory {
		return nil
	}
	g := &diskGuard{dir: cfg.Dir, reserve: cfg.ReserveBytes, ballastBytes: cfg.BallastBytes, log: log}
	if _, err := os.Stat(g.ballastPath()); err == nil {
		g.ballast = true
	}
	g.mu.Lock()
	g.restoreLocked()
	g.mu.Unlock()
	return g
}

func (g *diskGuard) ballastPath() string { return filepath.Join(g.dir, ballastName) }

// fragment checks that n more bytes leave the reserve free.
func (g *diskGuard) fragment(n int64) error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	free, ok := freeBytes(g.dir)
	if !ok {
		return nil
	}
	if free-n < g.reserve {
		g.releaseLocked(free)
		return fmt.Errorf("%w: %s free on the filesystem of %s; a %d-byte fragment needs it plus %s of headroom for the database: free space there (or lower cache_quota)",
			ErrDiskFull, human(free), g.dir, n, human(g.reserve))
	}
	g.restoreLocked()
	return nil
}

// kv checks that a small KV write has room, giving up the ballast first.
func (g *diskGuard) kv() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	free, ok := freeBytes(g.dir)
	if !ok {
		return nil
	}
	if free < g.reserve {
		g.releaseLocked(free)
		free, _ = freeBytes(g.dir)
	}
	if free < kvHeadroom {
		return fmt.Errorf("%w: %s free on the filesystem of %s; a state write needs %s: free space there",
			ErrDiskFull, human(free), g.dir, human(kvHeadroom))
	}
	return nil
}

// releaseLocked removes the ballast, if held, so badger has room to finish
// what it writes on its own and the node can record why it stops.
func (g *diskGuard) releaseLocked(free int64) {
	if !g.ballast {
		return
	}
	if err := os.Remove(g.ballastPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		g.log.Error("cannot remove disk ballast", "path", g.ballastPath(), "err", err)
		return
	}
	g.ballast = false
	g.log.Error("disk nearly full: ballast released, fragment writes refused until space returns",
		"dir", g.dir, "free", free, "reserve", g.reserve, "ballast", g.ballastBytes)
}

// restoreLocked allocates the ballast again once there is room for it and
// the reserve.
func (g *diskGuard) restoreLocked() {
	if g.ballast || g.ballastBytes == 0 {
		return
	}
	free, ok := freeBytes(g.dir)
	if !ok || free < g.reserve+g.ballastBytes {
		return
	}
	if err := allocate(g.ballastPath(), g.ballastBytes); err != nil {
		g.log.Warn("cannot allocate disk ballast", "path", g.ballastPath(), "err", err)
		_ = os.Remove(g.ballastPath())
		return
	}
	g.ballast = true
}

// human prints a byte count in MiB with one decimal.
func human(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
