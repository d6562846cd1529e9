package node

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// Files in the node directory.
const (
	EnrollmentFile = "node.json"
	IdentityFile   = "identity.key"
	GossipKeysFile = "gossip.keys"
	cacheSubdir    = "cache"
)

// Enrollment is what enroll learned, kept in DIR/node.json. Its presence
// means the directory is enrolled.
type Enrollment struct {
	NodeID        string        `json:"node_id"`
	Name          string        `json:"name"`
	Site          string        `json:"site"`
	Tags          []string      `json:"tags,omitempty"`
	Coordinator   string        `json:"coordinator"`    // multiaddr ending in /p2p/<ID>
	CoordinatorID string        `json:"coordinator_id"` // the coordinator's peer ID
	OrderKeys     []string      `json:"order_keys"`     // pinned order keys, PEM
	SiteMembers   []core.Member `json:"site_members,omitempty"`
	EnrolledAt    time.Time     `json:"enrolled_at"`
	// MaxOrderLifetime, pinned at enrollment, is the longest lifetime
	// (seconds from not-before to expiry) of a deploy order this node
	// accepts; 0 (an enrollment from before the limit) has none.
	MaxOrderLifetime int64 `json:"max_order_lifetime_s,omitempty"`
	// MemberList is the coordinator's signed member list of the site as
	// enrollment brought it; the node keeps newer ones in its KV.
	MemberList *core.Envelope `json:"member_list,omitempty"`
}

// Validate checks that the enrollment is usable: the coordinator address
// names the coordinator ID, and every order key parses.
func (e *Enrollment) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadEnrollment, fmt.Sprintf(format, a...))
	}
	if _, err := peer.Decode(e.NodeID); err != nil {
		return bad("node id %q: %v", e.NodeID, err)
	}
	ai, err := p2p.ParseAddrInfo(e.Coordinator)
	if err != nil {
		return bad("coordinator: %v", err)
	}
	if ai.ID.String() != e.CoordinatorID {
		return bad("coordinator address names peer %s, coordinator id is %s", ai.ID, e.CoordinatorID)
	}
	if len(e.OrderKeys) == 0 {
		return bad("no order keys pinned")
	}
	if _, err := e.orderKeys(); err != nil {
		return bad("%v", err)
	}
	return nil
}

func (e *Enrollment) orderKeys() ([]ed25519.PublicKey, error) {
	out := make([]ed25519.PublicKey, 0, len(e.OrderKeys))
	for i, s := range e.OrderKeys {
		pub, err := core.ParsePublicKey([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("order key %d: %w", i, err)
		}
		out = append(out, pub)
	}
	return out, nil
}

func (e *Enrollment) coordinator() peer.AddrInfo {
	ai, _ := p2p.ParseAddrInfo(e.Coordinator) // Validate checked it
	return ai
}

// LoadEnrollment reads and validates DIR/node.json.
func LoadEnrollment(dir string) (*Enrollment, error) {
	path := filepath.Join(dir, EnrollmentFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s: run `relaymesh node enroll` first", ErrNotEnrolled, dir, EnrollmentFile)
	}
	if err != nil {
		return nil, fmt.Errorf("node: read enrollment: %w", err)
	}
	var e Enrollment
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadEnrollment, path, err)
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &e, nil
}

func writeEnrollment(dir string, e *Enrollment) error {
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return core.WriteFileAtomic(filepath.Join(dir, EnrollmentFile), append(data, '\n'), 0o600)
}

// ReadGossipKeys reads DIR/gossip.keys: one base64 key per line, primary
// first. The file must not be readable by group or others.
func ReadGossipKeys(dir string) ([][]byte, error) {
	data, err := core.ReadSecretFile(filepath.Join(dir, GossipKeysFile))
	if err != nil {
		return nil, fmt.Errorf("node: gossip keys: %w", err)
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s line %d: %w", ErrBadEnrollment, GossipKeysFile, line, err)
		}
		keys = append(keys, k)
	}
	return keys, sc.Err()
}

func writeGossipKeys(dir string, keys [][]byte) error {
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k))
		b.WriteByte('\n')
	}
	return core.WriteFileAtomic(filepath.Join(dir, GossipKeysFile), []byte(b.String()), 0o600)
}

// maxOrderLifetime is the pinned MaxOrderLifetime as a duration.
func (e *Enrollment) maxOrderLifetime() time.Duration {
	return time.Duration(e.MaxOrderLifetime) * time.Second
}
