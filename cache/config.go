package cache

import (
	"fmt"
	"log/slog"
	"time"
)

// Config configures the badger cache.
type Config struct {
	// Dir holds the badger files. Required unless InMemory.
	Dir string
	// QuotaBytes caps the stored fragment bytes; 0 means unlimited.
	QuotaBytes int64
	// GCInterval is how often the value log is garbage collected in the
	// background; 0 disables the background run (GC can still be called).
	GCInterval time.Duration
	// Logger receives badger's warnings and errors and the cache's own
	// messages. Nil discards them.
	Logger *slog.Logger
	// HotBytes is how much memory keeps the fragments stored or read
	// last, already hashed, so that serving them again costs no disk read
	// and no hash; 0 turns it off. DefaultConfig sets DefaultHotBytes.
	HotBytes int64
	// ReserveBytes is the free space a fragment write must leave on the
	// cache's filesystem (see DefaultReserveBytes); below it fragment writes
	// fail with ErrDiskFull instead of letting badger fault on a full disk.
	// DefaultConfig sets DefaultReserveBytes; 0 turns the check off.
	ReserveBytes int64
	// BallastBytes is the size of the ballast file the cache keeps
	// allocated and gives up when the disk fills, so state writes still
	// have room. DefaultConfig sets DefaultBallastBytes; 0 means none.
	BallastBytes int64
	// InMemory keeps everything in memory (nothing durable); for tests.
	// Badger then refuses values over 1 MiB: use NewMemory for fragments.
	InMemory bool
}

// DefaultConfig returns the node's cache configuration rooted at dir.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:          dir,
		GCInterval:   10 * time.Minute,
		HotBytes:     DefaultHotBytes,
		ReserveBytes: DefaultReserveBytes,
		BallastBytes: DefaultBallastBytes,
		Logger:       slog.New(slog.DiscardHandler),
	}
}

// TestConfig returns an in-memory configuration with no background GC.
func TestConfig(quota int64) Config {
	return Config{QuotaBytes: quota, InMemory: true, Logger: slog.New(slog.DiscardHandler)}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Dir == "" && !c.InMemory:
		return fmt.Errorf("%w: Dir is empty: set a directory or InMemory", ErrBadConfig)
	case c.QuotaBytes < 0:
		return fmt.Errorf("%w: QuotaBytes %d: must be >= 0 (0 = unlimited)", ErrBadConfig, c.QuotaBytes)
	case c.HotBytes < 0:
		return fmt.Errorf("%w: HotBytes %d: must be >= 0 (0 = off)", ErrBadConfig, c.HotBytes)
	case c.ReserveBytes < 0:
		return fmt.Errorf("%w: ReserveBytes %d: must be >= 0 (0 = no free-space check)", ErrBadConfig, c.ReserveBytes)
	case c.BallastBytes < 0:
		return fmt.Errorf("%w: BallastBytes %d: must be >= 0 (0 = no ballast)", ErrBadConfig, c.BallastBytes)
	case c.GCInterval < 0:
		return fmt.Errorf("%w: GCInterval %s: must be >= 0 (0 = no background GC)", ErrBadConfig, c.GCInterval)
	}
	return nil
}
