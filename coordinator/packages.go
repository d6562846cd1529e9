package coordinator

import (
	"fmt"
	"io"
	"slices"

	"github.com/ipfs/go-cid"
	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
)

// PutFragment stores one fragment (verified against its CID by the cache).
func (c *Coordinator) PutFragment(id cid.Cid, data []byte) error {
	if err := c.store.Put(id, data); err != nil {
		return fmt.Errorf("%w: fragment %s: %w", ErrBadRequest, id, err)
	}
	return nil
}

// MissingFragments returns the CIDs among ids the coordinator lacks, so an
// upload can resume where it stopped.
func (c *Coordinator) MissingFragments(ids []string) ([]string, error) {
	var out []string
	for _, s := range ids {
		id, err := core.ParseCID(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		ok, err := c.store.Has(id)
		if err != nil {
			return nil, err
		}
		if !ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// PublishPackage records a manifest whose fragments are all stored, and
// stores the manifest itself as content, so nodes fetch it by its CID.
func (c *Coordinator) PublishPackage(manifest []byte) (*PackageRecord, error) {
	m, err := core.DecodeManifest(manifest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if max := c.cfg.maxPackageBytes(); m.Size > max {
		return nil, fmt.Errorf("%w: package %s %s is %d bytes, above the coordinator's maximum of %d (max_package_bytes in config.yaml)",
			ErrBadRequest, m.Name, m.Version, m.Size, max)
	}
	id := core.FragmentCID(manifest)
	missing, err := c.MissingFragments(m.Fragments)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %d of %d fragments not uploaded yet (first: %s)", ErrBadRequest, len(missing), len(m.Fragments), missing[0])
	}
	if err := c.store.Put(id, manifest); err != nil {
		return nil, err
	}
	pins := append(m.FragmentCIDs(), id)
	if err := c.store.Pin("package/"+id.String(), pins...); err != nil {
		return nil, err
	}
	rec := &PackageRecord{ID: id.String(), Manifest: m, Created: c.now().UTC()}
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if old := c.st.packages[rec.ID]; old != nil {
		return old, nil
	}
	if err := c.st.write(jsonPair(keyPackage+rec.ID, rec)); err != nil {
		return nil, err
	}
	c.st.packages[rec.ID] = rec
	c.log.Info("package published", "id", rec.ID, "name", m.Name, "version", m.Version, "size", m.Size)
	return rec, nil
}

// BuildPackage chunks an archive stream into the coordinator's store and
// publishes the manifest m completed with the archive's fields. r may be
// nil for a package without archive.
func (c *Coordinator) BuildPackage(m core.Manifest, r io.Reader, fragSize int) (*PackageRecord, error) {
	m.Schema = core.ManifestSchema
	if r != nil {
		max := c.cfg.maxPackageBytes()
		r = &sizeCap{r: r, left: max + 1} // one byte more tells "too big"
		info, err := core.Chunk(r, fragSize, func(id cid.Cid, data []byte) error { return c.store.Put(id, data) })
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		if info.Size > max {
			return nil, fmt.Errorf("%w: package %s %s: the archive is over %d bytes, the coordinator's maximum (max_package_bytes in config.yaml)",
				ErrBadRequest, m.Name, m.Version, max)
		}
		m.Size, m.Digest, m.FragmentSize = info.Size, info.Digest, fragSize
		m.Fragments = make([]string, len(info.Fragments))
		for i, f := range info.Fragments {
			m.Fragments[i] = f.String()
		}
	}
	b, err := m.Encode()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return c.PublishPackage(b)
}

// Packages lists the published packages, newest first.
func (c *Coordinator) Packages() []*PackageRecord {
	c.st.mu.RLock()
	defer c.st.mu.RUnlock()
	out := make([]*PackageRecord, 0, len(c.st.packages))
	for _, p := range c.st.packages {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *PackageRecord) int { return b.Created.Compare(a.Created) })
	return out
}

// Package returns one package.
func (c *Coordinator) Package(id string) (*PackageRecord, error) {
	c.st.mu.RLock()
	defer c.st.mu.RUnlock()
	p := c.st.packages[id]
	if p == nil {
		return nil, fmt.Errorf("%w: package %s", ErrNotFound, id)
	}
	return p, nil
}

// DeletePackage removes a package. It refuses while an active deployment
// uses it, unless force, which cancels those deployments first (as OCS).
func (c *Coordinator) DeletePackage(id string, force bool) error {
	c.st.mu.RLock()
	p := c.st.packages[id]
	active := c.activeUsersLocked(id)
	c.st.mu.RUnlock()
	if p == nil {
		return fmt.Errorf("%w: package %s", ErrNotFound, id)
	}
	if len(active) > 0 && !force {
		return fmt.Errorf("%w: package %s is used by active deployment(s) %v: wait, cancel them, or use --force", ErrConflict, id, active)
	}
	for _, d := range active {
		if _, err := c.CancelDeployment(d, true); err != nil {
			return fmt.Errorf("coordinator: cancel %s before deleting %s: %w", d, id, err)
		}
	}
	c.st.mu.Lock()
	// A deployment created since the check above keeps the package.
	if now := c.activeUsersLocked(id); len(now) > 0 {
		c.st.mu.Unlock()
		return fmt.Errorf("%w: package %s is used by deployment(s) %v created meanwhile: try again", ErrConflict, id, now)
	}
	if err := c.st.write(kvPair{key: keyPackage + id}); err != nil {
		c.st.mu.Unlock()
		return err
	}
	delete(c.st.packages, id)
	c.st.mu.Unlock()
	// Fragments shared with other packages stay pinned by those.
	if err := c.store.Unpin("package/" + id); err != nil {
		return err
	}
	for _, f := range append(p.Manifest.FragmentCIDs(), cid.MustParse(id)) {
		if !c.fragmentInUse(f) {
			if err := c.store.Delete(f); err != nil && err != cache.ErrNotFound {
				return err
			}
		}
	}
	return nil
}

// activeUsersLocked lists the deployments still using package id.
func (c *Coordinator) activeUsersLocked(id string) []string {
	var active []string
	for _, d := range c.st.deps {
		if slices.Contains(d.Packages, id) && c.deployStateLocked(d) != DeployCompleted && !d.Cancelled && d.Expires.After(c.now()) {
			active = append(active, d.ID)
		}
	}
	slices.Sort(active)
	return active
}

func (c *Coordinator) fragmentInUse(f cid.Cid) bool {
	c.st.mu.RLock()
	defer c.st.mu.RUnlock()
	s := f.String()
	for id, p := range c.st.packages {
		if id == s || slices.Contains(p.Manifest.Fragments, s) {
			return true
		}
	}
	return false
}

// sizeCap reads at most left bytes of r, then reports EOF: BuildPackage
// stops chunking one byte past the maximum instead of storing a huge
// archive before refusing it.
type sizeCap struct {
	r    io.Reader
	left int64
}

func (s *sizeCap) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	return n, err
}
