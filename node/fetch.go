package node

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node/runner"
	"github.com/relaymesh/relaymesh/p2p"
)

// packageError is a permanent problem with one package of an order: no
// retry can fix it, so the job fails at once with State.
type packageError struct {
	pkg   string
	state core.State
	msg   string
}

func (e *packageError) Error() string { return fmt.Sprintf("node: package %s: %s", e.pkg, e.msg) }

// sources lists the peers to fetch from, best first. For now only the
// coordinator; site peers come with membership.
func (n *Node) sources() []peer.ID { return []peer.ID{n.coord.ID} }

// fragTimeout bounds one fragment fetch: the call timeout plus one second
// per 16 KiB, so a fragment still arrives over a slow link.
func (n *Node) fragTimeout(size int64) time.Duration {
	return n.cfg.CallTimeout + time.Duration(size/(16<<10))*time.Second
}

// fetchOne fetches c (at most size bytes) from the first source that has
// it, verified against c.
func (n *Node) fetchOne(ctx context.Context, c cid.Cid, size int64) ([]byte, error) {
	var errs []error
	for _, p := range n.sources() {
		fctx, cancel := context.WithTimeout(ctx, n.fragTimeout(size))
		data, err := p2p.FetchFragment(fctx, n.h, p, c, size)
		cancel()
		if err == nil {
			return data, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// manifest returns package c's verified manifest, from the cache or
// fetched (and then cached, so a restart does not fetch it again).
func (n *Node) manifest(ctx context.Context, c cid.Cid) (*core.Manifest, error) {
	if data, err := n.store.Get(c); err == nil {
		if m, err := core.DecodeManifestFor(c, data); err == nil {
			return m, nil
		}
	}
	data, err := n.fetchOne(ctx, c, core.MaxManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("node: fetch manifest %s: %w", c, err)
	}
	m, err := core.DecodeManifestFor(c, data)
	if err != nil {
		return nil, &packageError{pkg: c.String(), state: core.ErrBadID, msg: err.Error()}
	}
	if err := n.store.Put(c, data); err != nil {
		return nil, fmt.Errorf("node: cache manifest %s: %w", c, err)
	}
	return m, nil
}

// runsHere reports whether a package built for os/arch runs on this node.
func runsHere(m *core.Manifest) bool {
	return (m.OS == "any" || m.OS == runtime.GOOS) && (m.Arch == "any" || m.Arch == runtime.GOARCH)
}

// download makes every package of j's order local: manifests, then the
// fragments the cache lacks. It reports DOWNLOADING when a job first gets
// here and DOWNLOADED when all is cached.
func (n *Node) download(ctx context.Context, j *job) ([]runner.Package, error) {
	release, err := n.dl.acquire(ctx, j.rank())
	if err != nil {
		return nil, err
	}
	defer release()
	o := j.order
	ids := make([]cid.Cid, len(o.Packages))
	for i, p := range o.Packages {
		if ids[i], err = core.ParseCID(p); err != nil {
			return nil, &packageError{pkg: p, state: core.ErrBadID, msg: err.Error()}
		}
	}
	if err := n.store.Pin(o.ID, ids...); err != nil {
		return nil, fmt.Errorf("node: pin manifests: %w", err)
	}
	pkgs := make([]runner.Package, len(ids))
	for i, c := range ids {
		m, err := n.manifest(ctx, c)
		if err != nil {
			return nil, err
		}
		if !runsHere(m) {
			return nil, &packageError{pkg: o.Packages[i], state: core.ErrBadID,
				msg: fmt.Sprintf("built for %s/%s, this node is %s/%s", m.OS, m.Arch, runtime.GOOS, runtime.GOARCH)}
		}
		if err := n.store.Pin(o.ID, m.FragmentCIDs()...); err != nil {
			return nil, fmt.Errorf("node: pin fragments: %w", err)
		}
		pkgs[i] = runner.Package{ID: o.Packages[i], Manifest: m}
	}
	ok, err := n.update(j, func(r *jobRecord) ([]core.Status, bool) {
		if r.Phase != phaseQueued {
			return nil, r.Phase == phaseDownloading || r.Phase == phaseDownloaded
		}
		r.Phase = phaseDownloading
		return []core.Status{{State: core.StateDownloading}}, true
	})
	if err != nil {
		return nil, err
	}
	if !ok && j.ctx.Err() == nil {
		return nil, fmt.Errorf("node: job %s is no longer downloading", o.ID)
	}
	fetched, ferr := n.fetchMissing(ctx, pkgs)
	_, err = n.update(j, func(r *jobRecord) ([]core.Status, bool) {
		r.BytesFetched += fetched
		if ferr != nil || r.Phase != phaseDownloading {
			return nil, fetched > 0
		}
		r.Phase = phaseDownloaded
		return []core.Status{{State: core.StateDownloaded, BytesFetched: r.BytesFetched}}, true
	})
	if ferr != nil {
		return nil, ferr
	}
	return pkgs, err
}

// fetchMissing fetches, FetchConcurrency at a time, every fragment of
// pkgs the cache does not hold, and returns the bytes fetched. Each is
// verified by FetchFragment and again by the cache's Put. It tries every
// fragment (FragmentRetry times each) even after one failed, so a retry
// of the job has less to do, and returns the first error.
func (n *Node) fetchMissing(ctx context.Context, pkgs []runner.Package) (int64, error) {
	type want struct {
		c    cid.Cid
		size int64
	}
	var wants []want
	seen := map[cid.Cid]bool{}
	for _, p := range pkgs {
		for i, c := range p.Manifest.FragmentCIDs() {
			if seen[c] {
				continue
			}
			seen[c] = true
			if has, err := n.store.Has(c); err != nil {
				return 0, err
			} else if !has {
				wants = append(wants, want{c, p.Manifest.FragmentLen(i)})
			}
		}
	}
	var (
		fetched  atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
		work     = make(chan want)
	)
	for range min(n.cfg.FetchConcurrency, len(wants)) {
		wg.Go(func() {
			for w := range work {
				if err := n.fetchFragment(ctx, w.c, w.size); err != nil {
					errOnce.Do(func() { firstErr = err })
					continue
				}
				fetched.Add(w.size)
			}
		})
	}
feed:
	for _, w := range wants {
		select {
		case work <- w:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fetched.Load(), err
	}
	return fetched.Load(), firstErr
}

// fetchFragment fetches one fragment into the cache, FragmentRetry tries.
func (n *Node) fetchFragment(ctx context.Context, c cid.Cid, size int64) error {
	var err error
	for try := 1; try <= n.cfg.FragmentRetry; try++ {
		var data []byte
		if data, err = n.fetchOne(ctx, c, size); err == nil {
			if err = n.store.Put(c, data); err == nil {
				return nil
			}
		}
		if ctx.Err() != nil || try == n.cfg.FragmentRetry {
			break
		}
		if !sleep(ctx, backoff(n.cfg.JobBackoffMin, n.cfg.JobBackoffMax, try)) {
			break
		}
	}
	return fmt.Errorf("node: fragment %s: %w", c, err)
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
