package p2p

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// GenerateIdentity returns a fresh ed25519 key for a host.
func GenerateIdentity() (crypto.PrivKey, error) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("p2p: generate identity: %w", err)
	}
	return k, nil
}

// WriteIdentity stores key at path with mode 0600, atomically: a temporary
// file in the same directory is written, fsynced and renamed over path,
// then the directory is fsynced.
func WriteIdentity(path string, key crypto.PrivKey) (err error) {
	if key == nil || key.Type() != crypto.Ed25519 {
		return fmt.Errorf("p2p: write identity %s: %w", path, ErrNotEd25519)
	}
	data, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return fmt.Errorf("p2p: write identity %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("p2p: write identity: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	// CreateTemp uses 0600 already; make it explicit whatever the umask.
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("p2p: write identity: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("p2p: write identity: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("p2p: write identity: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("p2p: write identity: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("p2p: write identity: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: not every filesystem syncs directories
		_ = d.Close()
	}
	return nil
}

// ReadIdentity loads a key written by WriteIdentity. It refuses a file that
// group or others may access, and any key that is not ed25519.
func ReadIdentity(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("p2p: read identity: %w", err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("p2p: read identity: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o: run chmod 600 %s", ErrKeyPermissions, path, perm, path)
	}
	const maxKeyFile = 4096 // a marshalled ed25519 key is 68 bytes
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadIdentity, path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrBadIdentity, path, maxKeyFile)
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadIdentity, path, err)
	}
	if key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: %s holds a %s key: %w", ErrBadIdentity, path, key.Type(), ErrNotEd25519)
	}
	return key, nil
}

// Ed25519Raw returns key as a standard library ed25519 key, for signing
// relaymesh documents with the host's identity. It returns nil when key is
// not ed25519.
func Ed25519Raw(key crypto.PrivKey) ed25519.PrivateKey {
	if key == nil || key.Type() != crypto.Ed25519 {
		return nil
	}
	raw, err := key.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil
	}
	return ed25519.PrivateKey(raw)
}

// PeerPublicKey extracts the ed25519 public key embedded in id.
func PeerPublicKey(id peer.ID) (ed25519.PublicKey, error) {
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: peer %s: %w", ErrBadIdentity, id, err)
	}
	if pub.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("peer %s has a %s key: %w", id, pub.Type(), ErrNotEd25519)
	}
	raw, err := pub.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: peer %s: bad ed25519 public key", ErrBadIdentity, id)
	}
	return ed25519.PublicKey(raw), nil
}

// AddrInfo returns h's peer ID and listen addresses, as another host needs
// them to connect.
func AddrInfo(h host.Host) peer.AddrInfo {
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}

// ParseAddrInfo parses a /ip4/.../tcp/N/p2p/<peer ID> string.
func ParseAddrInfo(s string) (peer.AddrInfo, error) {
	ai, err := peer.AddrInfoFromString(s)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: %q: want /ip4/<ip>/tcp/<port>/p2p/<peer ID>: %w", ErrBadAddr, s, err)
	}
	if len(ai.Addrs) == 0 {
		return peer.AddrInfo{}, fmt.Errorf("%w: %q: no transport address before /p2p", ErrBadAddr, s)
	}
	return *ai, nil
}
