package coordinator

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
	"gopkg.in/yaml.v3"
)

// InitResult tells what Init created.
type InitResult struct {
	Dir      string
	PeerID   string
	OrderKey string // key ID of the order-signing key
}

// Init creates a coordinator directory: libp2p identity, order-signing key,
// admin token, gossip keyring and a default config file. It refuses a
// directory that already holds a coordinator, and removes what it wrote
// when a step fails.
func Init(dir string) (res InitResult, err error) {
	if _, err := os.Stat(filepath.Join(dir, FileOrderKey)); err == nil {
		return res, fmt.Errorf("%w: %s already holds a coordinator", ErrConflict, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	var written []string
	defer func() {
		if err != nil {
			for _, f := range written {
				os.Remove(f)
			}
		}
	}()
	path := func(name string) string {
		p := filepath.Join(dir, name)
		written = append(written, p)
		return p
	}
	id, err := p2p.GenerateIdentity()
	if err != nil {
		return res, err
	}
	if err := p2p.WriteIdentity(path(FileIdentity), id); err != nil {
		return res, err
	}
	priv, err := core.GenerateKey()
	if err != nil {
		return res, err
	}
	if err := core.WritePrivateKey(path(FileOrderKey), priv); err != nil {
		return res, err
	}
	if err := core.WritePublicKey(path(FileOrderPub), priv.Public().(ed25519.PublicKey)); err != nil {
		return res, err
	}
	tok := make([]byte, 32)
	rand.Read(tok)
	if err := core.WriteFileAtomic(path(FileAdminToken), []byte(hex.EncodeToString(tok)+"\n"), 0o600); err != nil {
		return res, err
	}
	gk := make([]byte, 32)
	rand.Read(gk)
	keys, _ := json.Marshal([]string{base64.StdEncoding.EncodeToString(gk)})
	if err := core.WriteFileAtomic(path(FileGossipKey), keys, 0o600); err != nil {
		return res, err
	}
	cfg := DefaultConfig(dir)
	y, err := yaml.Marshal(&cfg)
	if err != nil {
		return res, err
	}
	header := "# relaymesh coordinator configuration; durations like 600s or 10m.\n"
	if err := core.WriteFileAtomic(path(FileConfig), append([]byte(header), y...), 0o600); err != nil {
		return res, err
	}
	pid, err := peerIDOf(id)
	if err != nil {
		return res, err
	}
	return InitResult{Dir: dir, PeerID: pid, OrderKey: core.KeyID(priv.Public().(ed25519.PublicKey))}, nil
}
