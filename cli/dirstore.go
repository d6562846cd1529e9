package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
)

// dirStore is the CLI's local package store: one file per fragment (and
// per manifest), named by its CID, under DIR/fragments/. A plain directory
// rather than the badger cache the daemons use, because a build writes
// each fragment once and reads it rarely: files stream through the page
// cache, so building a multi-GiB package keeps the process small (badger's
// memory-mapped value log would count the whole archive as resident). It
// can be copied, rsynced or served by any file server; bytes are re-hashed
// on every read.
type dirStore struct {
	root string
	log  *slog.Logger
}

// openStore opens (creating) the package store in dir.
func openStore(dir string, log *slog.Logger) (*dirStore, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(dir, "fragments"), 0o755); err != nil {
		return nil, fmt.Errorf("open store %q: %w", dir, err)
	}
	return &dirStore{root: dir, log: log}, nil
}

func (s *dirStore) path(c cid.Cid) string {
	k := c.String()
	return filepath.Join(s.root, "fragments", k[len(k)-2:], k)
}

// Put verifies data against c and writes it (atomically: temp + rename).
func (s *dirStore) Put(c cid.Cid, data []byte) error {
	if err := core.VerifyBytes(c, data); err != nil {
		return err
	}
	return s.putTrusted(c, data)
}

// putTrusted writes data whose CID the caller computed from these bytes.
func (s *dirStore) putTrusted(c cid.Cid, data []byte) error {
	p := s.path(c)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Get reads fragment c and checks it; a file that does not match its CID
// is removed and reported as corrupt.
func (s *dirStore) Get(c cid.Cid) ([]byte, error) {
	if err := core.CheckCID(c); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", cache.ErrNotFound, c)
	}
	if err != nil {
		return nil, err
	}
	if err := core.VerifyBytes(c, b); err != nil {
		s.log.Warn("store: dropping a fragment that does not match its CID", "cid", c)
		_ = os.Remove(s.path(c))
		return nil, err
	}
	return b, nil
}

// Pin is a no-op: a package store keeps everything until removed by hand.
func (s *dirStore) Pin(string, ...cid.Cid) error { return nil }

// Close syncs nothing: each fragment was renamed into place whole, and a
// build interrupted before its manifest file was written is simply redone.
func (s *dirStore) Close() error { return nil }
