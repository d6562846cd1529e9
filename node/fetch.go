package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node/runner"
)

// packageError is a permanent problem with one package of an order: no
// retry can fix it, so the job fails at once with State.
type packageError struct {
	pkg   string
	state core.State
	msg   string
}

func (e *packageError) Error() string { return fmt.Sprintf("node: package %s: %s", e.pkg, e.msg) }

// fragTimeout bounds one fragment fetch: the call timeout plus one second
// per 16 KiB, so a fragment still arrives over a slow link.
func (n *Node) fragTimeout(size int64) time.Duration {
	return n.cfg.CallTimeout + time.Duration(size/(16<<10))*time.Second
}

// fetchOne fetches c (at most size bytes), verified against c, from the
// best source the mesh knows: site peers, the site's relay, the
// coordinator (see node/mesh).
func (n *Node) fetchOne(ctx context.Context, c cid.Cid, size int64) (core.Verified, error) {
	return n.mesh.Fetch(ctx, c, size)
}

// manifest returns package c's verified manifest, from the cache or
// fetched (and then cached, so a restart does not fetch it again).
func (n *Node) manifest(ctx context.Context, c cid.Cid) (*core.Manifest, error) {
	if data, err := n.store.Get(c); err == nil {
		if m, err := core.DecodeManifestFor(c, data); err == nil {
			return m, nil
		}
	}
	v, err := n.mesh.FetchManifest(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("node: fetch manifest %s: %w", c, err)
	}
	m, err := core.DecodeManifestFor(c, v.Bytes())
	if err != nil {
		return nil, &packageError{pkg: c.String(), state: core.ErrBadID, msg: err.Error()}
	}
	if err := cache.PutVerified(n.store, v); err != nil {
		return nil, fmt.Errorf("node: cache manifest %s: %w", c, err)
	}
	n.mesh.Have(c) // site peers may ask this node for it, not only the relay
	return m, nil
}

// checkLimits refuses a package larger than this node's limits, before
// any of its fragments is fetched or pinned.
func (n *Node) checkLimits(pkg string, m *core.Manifest) error {
	if m.Size > n.cfg.MaxPackageBytes {
		return &packageError{pkg: pkg, state: core.ErrDownloadPack, msg: fmt.Sprintf(
			"package is %d bytes, this node accepts at most %d (max_package_bytes); split the package or raise the limit",
			m.Size, n.cfg.MaxPackageBytes)}
	}
	if len(m.Fragments) > n.cfg.MaxPackageFragments {
		return &packageError{pkg: pkg, state: core.ErrDownloadPack, msg: fmt.Sprintf(
			"package has %d fragments, this node accepts at most %d (max_package_fragments); use a larger fragment size or raise the limit",
			len(m.Fragments), n.cfg.MaxPackageFragments)}
	}
	return nil
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
		if err := n.checkLimits(o.Packages[i], m); err != nil {
			return nil, err
		}
		if !o.Uninstall && (len(o.Packages) == 1 || o.Mode == core.ModeBulk) {
			// The refusal fails the whole order, as the install would:
			// fetch nothing. One-by-one orders of several packages leave
			// it to the runner, so the other packages still install.
			if err := n.checkDowngrade(o, o.Packages[i], m); err != nil {
				return nil, err
			}
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
	if err := n.checkFits(pkgs); err != nil {
		return nil, err
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
	if err == nil {
		n.log.Info("downloaded", "order", o.ID, "packages", len(pkgs), "fetched", fetched)
	}
	return pkgs, err
}

// fetchMissing fetches, FetchConcurrency at a time, every fragment of
// pkgs the cache does not hold, and returns the bytes fetched. Each is
// verified by FetchFragment and again by the cache's Put. It tries every
// fragment (FragmentRetry times each) even after one failed, so a retry
// of the job has less to do, and returns the first error.
func (n *Node) fetchMissing(ctx context.Context, pkgs []runner.Package) (int64, error) {
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
	pick := &picker{left: wants, maxPulls: n.cfg.FetchConcurrency, avail: n.mesh.AvailableNow, freed: make(chan struct{}, 1), empty: make(chan struct{})}
	if n.cfg.Strategy == "mesh" && !n.cfg.NoGossip && n.SiteMembers() > 1 {
		// Pull at most one fragment the site does not have yet (a node
		// through the relay, the relay from upstream for itself); take
		// what is already in the site first. That keeps the relay's
		// upstream queue short and made of what members asked for, so
		// what it fetched is copied into the site at once and a relay
		// that dies takes little with it.
		pick.maxPulls = 1
	}
	var (
		fetched  atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	for range min(n.cfg.FetchConcurrency, len(wants)) {
		wg.Go(func() {
			t := time.NewTicker(500 * time.Millisecond)
			defer t.Stop()
			for ctx.Err() == nil {
				// Taken before next: an announcement in between still
				// wakes this worker.
				changed := n.mesh.HaveChanged()
				w, pulled, ok, done := pick.next()
				if done {
					return
				}
				if !ok {
					// Nothing the site has yet, and the pull slots are
					// taken: wait for a member's announcement, a free
					// slot, or (for views changing otherwise) a tick.
					select {
					case <-ctx.Done():
					case <-changed:
					case <-pick.freed:
					case <-pick.empty:
					case <-t.C:
					}
					continue
				}
				err := n.fetchFragment(ctx, w.c, w.size, pick.endgame)
				pick.finish(pulled)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					continue
				}
				fetched.Add(w.size)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fetched.Load(), err
	}
	return fetched.Load(), firstErr
}

type want struct {
	c    cid.Cid
	size int64
}

// picker hands out the fragments a node still needs: first the ones some
// site peer already holds (in random order), then, at most maxPulls at a
// time, ones nobody in the site has yet (which the relay pulls in).
type picker struct {
	mu       sync.Mutex
	left     []want
	pulls    int
	inflight int // handed out and not finished
	maxPulls int
	avail    func() func(cid.Cid) bool // a snapshot of what the site holds
	freed    chan struct{}             // signalled when a pull slot frees up
	// empty is closed when the last fragment is taken, so workers that
	// wait for an announcement end at once instead of at their next tick
	// (the download was reported up to half a second late).
	empty     chan struct{}
	emptyOnce sync.Once
}

// next returns a fragment to fetch and whether it is a pull; ok is false
// when the worker should wait, done when nothing is left.
func (p *picker) next() (w want, pull, ok, done bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.left) == 0 {
		return w, false, false, true
	}
	start := rand.IntN(len(p.left))
	inSite := p.avail()
	for k := range p.left {
		i := (start + k) % len(p.left)
		if inSite(p.left[i].c) {
			return p.take(i), false, true, false
		}
	}
	if p.pulls >= p.maxPulls {
		return w, false, false, false
	}
	p.pulls++
	return p.take(start), true, true, false
}

// endgameFragments: once nothing is left to hand out and at most this
// many fragments are in flight, the download is in its endgame and a
// late fragment may be hedged (see fetchHedged).
const endgameFragments = 4

// endgame reports whether every fragment has been handed out and at most
// endgameFragments of them are still being fetched.
func (p *picker) endgame() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.left) == 0 && p.inflight <= endgameFragments
}

func (p *picker) take(i int) want {
	p.inflight++
	w := p.left[i]
	p.left[i] = p.left[len(p.left)-1]
	p.left = p.left[:len(p.left)-1]
	if len(p.left) == 0 && p.empty != nil {
		p.emptyOnce.Do(func() { close(p.empty) })
	}
	return w
}

func (p *picker) finish(pull bool) {
	p.mu.Lock()
	p.inflight--
	if pull {
		p.pulls--
	}
	p.mu.Unlock()
	if pull {
		signal(p.freed)
	}
}

// fetchFragment fetches one fragment into the cache, FragmentRetry tries.
// In the endgame (endgame reports it) a late fetch is hedged.
func (n *Node) fetchFragment(ctx context.Context, c cid.Cid, size int64, endgame func() bool) error {
	var err error
	for try := 1; try <= n.cfg.FragmentRetry; try++ {
		var v core.Verified
		if v, err = n.fetchHedged(ctx, c, size, endgame); err == nil {
			if err = cache.PutVerified(n.store, v); err == nil {
				n.mesh.Have(c)
				n.log.Debug("fragment stored", "cid", c, "bytes", size)
				return nil
			}
		}
		if ctx.Err() != nil || try == n.cfg.FragmentRetry {
			break
		}
		if !sleep(ctx, jitter(backoff(n.cfg.JobBackoffMin, n.cfg.JobBackoffMax, try), rand.Float64)) {
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

// fetchHedged is fetchOne with endgame hedging: when the download is in
// its endgame and this fetch has been in flight longer than the site's
// measured rate says it should (mesh.HedgeAfter), the fragment is asked of
// one other site member that holds it too (mesh.Hedge: never the
// coordinator, never over the WAN again), and the first verified answer
// wins; the other request is cancelled. At most one hedge per fetch.
func (n *Node) fetchHedged(ctx context.Context, c cid.Cid, size int64, endgame func() bool) (core.Verified, error) {
	after, ok := n.mesh.HedgeAfter(size)
	if endgame == nil || !ok {
		return n.fetchOne(ctx, c, size)
	}
	due := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTimer(after)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if endgame() {
				close(due)
				return
			}
			t.Reset(250 * time.Millisecond)
		}
	})
	defer wg.Wait()
	defer close(stop)
	v, hedgeWon, err := hedged(ctx,
		func(ctx context.Context) (core.Verified, error) { return n.fetchOne(ctx, c, size) },
		func(ctx context.Context) (core.Verified, error) { return n.mesh.Hedge(ctx, c, size) },
		due)
	if hedgeWon {
		n.mesh.HedgeWon()
		n.log.Debug("fragment hedged: the second source answered first", "cid", c)
	}
	return v, err
}

// hedged runs primary; once due is closed (if primary has not ended) it
// runs hedge beside it. The first success wins and the other is cancelled;
// when both fail, primary's error is returned. It returns when both have
// ended.
func hedged(ctx context.Context, primary, hedge func(context.Context) (core.Verified, error),
	due <-chan struct{},
) (v core.Verified, hedgeWon bool, err error) {
	type result struct {
		v     core.Verified
		err   error
		hedge bool
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result, 2)
	running := 1
	go func() {
		v, err := primary(ctx)
		results <- result{v, err, false}
	}()
	var primaryErr error
	for running > 0 {
		select {
		case <-due:
			due = nil
			running++
			go func() {
				v, err := hedge(ctx)
				results <- result{v, err, true}
			}()
		case r := <-results:
			running--
			if r.err == nil {
				cancel()
				for ; running > 0; running-- {
					<-results
				}
				return r.v, r.hedge, nil
			}
			if !r.hedge {
				primaryErr = r.err
				due = nil // no hedge once the fetch it would hedge has ended
			}
		}
	}
	return core.Verified{}, false, primaryErr
}
