package coordinator

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// Gossip key rotation of a site, in three steps so that the site's gossip
// never splits. Each step sets the site's keyring, signs a gossip-key
// order (a Deployment of kind "gossip-key") naming it by fingerprints, and
// waits until every live node of the site reports, on its sync, that it
// holds that keyring:
//
//	adding   [old, new]  every node can read the new key, all still write the old
//	using    [new, old]  all write the new key, the old one is still read
//	removing [new]       the old key is gone
//
// The keys go to each node only in its sync response (core.GossipRing),
// never in the order. A node offline meanwhile is not waited for: its
// next sync brings it the site's keyring, whatever step it missed.

// DeployKindGossipKey marks a Deployment that is a gossip-key order.
const DeployKindGossipKey = "gossip-key"

// Rotation phases.
const (
	RotationAdding   = "adding"
	RotationUsing    = "using"
	RotationRemoving = "removing"
	RotationDone     = "done"
)

// keyRotation holds a site's latest rotation: gr/<site> → KeyRotation.
const keyRotation = "gr/"

// KeyRotation is a site's latest gossip key rotation.
type KeyRotation struct {
	Site  string `json:"site"`
	Phase string `json:"phase"`
	// Version is the sequence of the current step's order: the version
	// of the site's keyring the nodes are handed on sync.
	Version uint64 `json:"version"`
	// Order is the ID of the current step's order.
	Order string `json:"order"`
	// New is the new key's fingerprint, Old those of the keys it retires.
	New      string    `json:"new"`
	Old      []string  `json:"old"`
	Started  time.Time `json:"started"`
	Since    time.Time `json:"since"` // when the current step began
	Finished time.Time `json:"finished,omitzero"`
}

// KeyRotationView is a site's rotation with who the current step waits for.
type KeyRotationView struct {
	KeyRotation
	// Waiting names the live nodes of the site that have not confirmed
	// the current step's keyring yet.
	Waiting []string `json:"waiting,omitempty"`
}

// RotateSiteKey starts a rotation of site's gossip key to a new random
// key. It fails for a site without nodes and while a rotation of the site
// is running.
func (c *Coordinator) RotateSiteKey(site string) (*KeyRotationView, error) {
	now := c.now().UTC().Truncate(time.Second)
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if !c.siteExistsLocked(site) {
		return nil, fmt.Errorf("%w: site %q has no enrolled node: see relaymesh sites list", ErrNotFound, site)
	}
	if r := c.st.rotations[site]; r != nil && r.Phase != RotationDone {
		return nil, fmt.Errorf("%w: a gossip key rotation of site %s is already %s (since %s, order %s): wait until it is done (relaymesh sites list)",
			ErrConflict, site, r.Phase, r.Since.Format(time.RFC3339), r.Order)
	}
	old, keysPair, err := c.siteKeysLocked(site, "")
	if err != nil {
		return nil, err
	}
	if len(old)+1 > core.MaxGossipKeys {
		old = old[:core.MaxGossipKeys-1]
	}
	k := make([]byte, core.GossipKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("coordinator: gossip key for site %s: %w", site, err)
	}
	r := &KeyRotation{Site: site, Phase: RotationAdding, New: core.GossipKeyID(k), Old: core.GossipKeyIDs(old), Started: now}
	var extra []kvPair
	if keysPair != nil {
		extra = append(extra, *keysPair)
	}
	if err := c.rotationStepLocked(r, append(slices.Clone(old), k), now, extra...); err != nil {
		return nil, err
	}
	c.log.Info("gossip key rotation started", "site", site, "order", r.Order, "new_key", r.New[:16])
	return c.rotationViewLocked(r, now), nil
}

// KeyRotationOf returns site's latest rotation; nil when it never had one.
func (c *Coordinator) KeyRotationOf(site string) *KeyRotationView {
	c.st.mu.RLock()
	defer c.st.mu.RUnlock()
	r := c.st.rotations[site]
	if r == nil {
		return nil
	}
	return c.rotationViewLocked(r, c.now())
}

func (c *Coordinator) siteExistsLocked(site string) bool {
	for _, n := range c.st.nodes {
		if n.Site == site {
			return true
		}
	}
	return false
}

// rotationStepLocked sets site r.Site's keyring to keys and signs the
// gossip-key order naming it to all the site's nodes, written in one
// transaction with the rotation r (its Version, Order and Since set here).
func (c *Coordinator) rotationStepLocked(r *KeyRotation, keys [][]byte, now time.Time, extra ...kvPair) error {
	if err := core.CheckGossipKeyring(keys); err != nil {
		return err
	}
	var targets []string
	for _, n := range c.st.nodes {
		if n.Site == r.Site {
			targets = append(targets, n.ID)
		}
	}
	slices.Sort(targets)
	ttl := min(DefaultOrderLifetime, c.cfg.maxOrderLifetime())
	id, seq := newID("g"), c.st.seq+1
	o := &core.Order{
		Schema: core.OrderSchema, Kind: core.KindGossipKey, ID: id, Seq: seq,
		IssuedAt: now, NotBefore: now, Expires: now.Add(ttl).Truncate(time.Second), Targets: targets, Priority: 10,
		GossipKeys: core.GossipKeyIDs(keys),
	}
	env, err := core.SignOrder(o, c.orderKey)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	d := &Deployment{
		ID: id, Kind: DeployKindGossipKey, Packages: []string{}, Targets: targets, Seq: seq, Order: env, Priority: o.Priority,
		NotBefore: o.NotBefore, Expires: o.Expires, Created: now,
	}
	next := *r
	next.Version, next.Order, next.Since = seq, id, now
	kb, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	pairs := append(extra, jsonPair(keyDeploy+id, d), seqPair(seq), kvPair{keySiteKeys + r.Site, kb}, jsonPair(keyRotation+r.Site, &next))
	if err := c.st.write(pairs...); err != nil {
		return err
	}
	*r = next
	c.adoptOrderLocked(d, now)
	c.st.siteKeys[r.Site] = keys
	c.st.rotations[r.Site] = r
	c.log.Info("gossip key rotation step", "site", r.Site, "phase", r.Phase, "order", id, "seq", seq, "targets", len(targets))
	c.dispatchLocked(env, targets)
	return nil
}

// waitingLocked lists the live nodes of site whose last sync did not
// report keys as their keyring.
func (c *Coordinator) waitingLocked(site string, keys []string, now time.Time) []string {
	var out []string
	for _, n := range c.st.nodes {
		if n.Site == site && now.Sub(n.LastSeen) < c.cfg.OnlineWindow && !slices.Equal(n.GossipKeys, keys) {
			out = append(out, cmpName(n))
		}
	}
	slices.Sort(out)
	return out
}

func cmpName(n *NodeRecord) string {
	if n.Name != "" {
		return n.Name
	}
	return n.ID
}

// advanceRotationLocked moves site's rotation to its next step once every
// live node of the site holds the current step's keyring. st.mu is held
// for writing.
func (c *Coordinator) advanceRotationLocked(site string, now time.Time) {
	r := c.st.rotations[site]
	if r == nil || r.Phase == RotationDone {
		return
	}
	keys := c.st.siteKeys[site]
	if len(c.waitingLocked(site, core.GossipKeyIDs(keys), now)) > 0 {
		return
	}
	next := *r
	var err error
	switch r.Phase {
	case RotationAdding:
		// The new key (last) becomes the primary; the old ones stay readable.
		next.Phase = RotationUsing
		err = c.rotationStepLocked(&next, append([][]byte{keys[len(keys)-1]}, keys[:len(keys)-1]...), now.UTC().Truncate(time.Second))
	case RotationUsing:
		next.Phase = RotationRemoving
		err = c.rotationStepLocked(&next, keys[:1], now.UTC().Truncate(time.Second))
	case RotationRemoving:
		next.Phase, next.Finished = RotationDone, now.UTC().Truncate(time.Second)
		if err = c.st.write(jsonPair(keyRotation+site, &next)); err == nil {
			c.st.rotations[site] = &next
			c.log.Info("gossip key rotation done", "site", site, "key", next.New[:16])
		}
	}
	if err != nil {
		c.log.Error("gossip key rotation: cannot take the next step; retried on the next sync", "site", site, "phase", r.Phase, "err", err)
	}
}

func (c *Coordinator) rotationViewLocked(r *KeyRotation, now time.Time) *KeyRotationView {
	v := &KeyRotationView{KeyRotation: *r}
	v.Old = slices.Clone(r.Old)
	if r.Phase != RotationDone {
		v.Waiting = c.waitingLocked(r.Site, core.GossipKeyIDs(c.st.siteKeys[r.Site]), now)
	}
	return v
}

// gossipRingLocked is site's keyring for a node that reported holding
// have; nil when it holds it already or reports nothing (a node older
// than rotation).
func (c *Coordinator) gossipRingLocked(site string, have []string) *core.GossipRing {
	keys := c.st.siteKeys[site]
	if len(have) == 0 || len(keys) == 0 || slices.Equal(have, core.GossipKeyIDs(keys)) {
		return nil
	}
	ring := &core.GossipRing{Keys: slices.Clone(keys)}
	if r := c.st.rotations[site]; r != nil {
		ring.Version = r.Version
	}
	return ring
}

func loadRotation(s *state, k string, v []byte) error {
	var r KeyRotation
	if err := json.Unmarshal(v, &r); err != nil {
		return err
	}
	if r.Site != strings.TrimPrefix(k, keyRotation) {
		return fmt.Errorf("rotation of site %q stored under %s", r.Site, k)
	}
	s.rotations[r.Site] = &r
	return nil
}
