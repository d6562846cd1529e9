package simulations

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/node"
	"github.com/relaymesh/relaymesh/simulations/memnet"
	"github.com/relaymesh/relaymesh/simulations/vnet"
)

// The libp2p ports of the simulated hosts (each has its own address).
const (
	coordPort = 7471
	nodePort  = 4001
)

// simNode is one node of the simulated fleet.
type simNode struct {
	name, site string
	siteIdx    int // 0-based
	id         peer.ID
	up, down   float64 // scaled bytes/s, after heterogeneity
	cfg        node.Config
	inst       *checkInstaller
	store      *timedStore
	tr         *memnet.Transport
	ep         *vnet.Endpoint
	late       bool // started by a late-join fault

	mu      sync.Mutex
	n       *node.Node
	cancel  context.CancelFunc
	killed  bool
	started bool
}

func (s *simNode) running() *node.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.killed || !s.started {
		return nil
	}
	return s.n
}

// fleet is a coordinator and its nodes over one shaped network, for one
// strategy.
type fleet struct {
	sc       *Scenario
	strategy string
	log      *slog.Logger
	root     string
	net      *vnet.Network
	gossip   *memnet.Network
	coord    *coordinator.Coordinator
	sites    []string
	nodes    []*simNode
	bySite   [][]*simNode
	wg       sync.WaitGroup // fault goroutines (kills, late joins)
	marks    []FaultMark    // faults applied, for the report (the watch loop's)
}

// workers runs fn for 0..n-1 on at most k goroutines and returns the
// first error.
func workers(n, k int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	ch := make(chan int)
	for range min(k, n) {
		wg.Go(func() {
			for i := range ch {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		ch <- i
	}
	close(ch)
	wg.Wait()
	return first
}

// newFleet builds the network, starts the coordinator, enrolls every node
// and starts all but the late joiners.
func newFleet(ctx context.Context, sc *Scenario, strategy, root string, log *slog.Logger, virtual bool) (*fleet, error) {
	p := sc.s
	nw, err := vnet.New(vnet.Config{CoordinatorUp: sc.scaled(p.coordUp)})
	if err != nil {
		return nil, err
	}
	f := &fleet{sc: sc, strategy: strategy, log: log, root: root, net: nw, gossip: &memnet.Network{}}
	for i := range sc.Sites.Count {
		name := fmt.Sprintf("site-%d", i+1)
		f.sites = append(f.sites, name)
		if err := nw.AddSite(name, vnet.SiteLink{Up: sc.scaled(p.wanUp), Down: sc.scaled(p.wanDown),
			WANLatency: p.latency, LANLatency: p.lanLatency}); err != nil {
			return nil, err
		}
	}

	dir := filepath.Join(root, "coordinator")
	if _, err := coordinator.Init(dir); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	cc := coordinator.TestConfig(dir)
	cc.Logger = log.With("who", "coordinator")
	cc.NoAdminAPI = virtual // no real socket in the bubble; the harness calls methods
	cep := nw.Coordinator()
	cc.Network, cc.Listen = cep, []string{cep.Addr(coordPort)}
	if cc.PushConcurrency < 64 {
		cc.PushConcurrency = 64
	}
	co, err := coordinator.Open(cc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	if err := co.Start(ctx); err != nil {
		_ = co.Close()
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	f.coord = co

	if err := f.enroll(ctx); err != nil {
		return f, err
	}
	if virtual {
		return f, f.startJittered()
	}
	err = workers(len(f.nodes), 16, func(i int) error {
		if f.nodes[i].late {
			return nil
		}
		return f.start(f.nodes[i])
	})
	return f, err
}

// startJittered starts every node but the late joiners at a seeded random
// moment of a window of 1 ms per node (at least 1 s): in virtual time
// nodes started together would do everything at the same instant (a
// thousand dials to the coordinator at once), which real machines never
// do.
func (f *fleet) startJittered() error {
	rng := rand.New(rand.NewPCG(f.sc.Seed, 0x57a27))
	window := max(time.Second, time.Duration(len(f.nodes))*time.Millisecond)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, n := range f.nodes {
		d := time.Duration(rng.Int64N(int64(window)))
		if n.late {
			continue
		}
		wg.Go(func() {
			time.Sleep(d)
			if err := f.start(n); err != nil {
				mu.Lock()
				first = cmp.Or(first, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// enroll creates every node's directory, identity and configuration, in a
// seeded order so rates and roles repeat from run to run.
func (f *fleet) enroll(ctx context.Context) error {
	sc, p := f.sc, f.sc.s
	rng := rand.New(rand.NewPCG(sc.Seed, 0x5eed))
	late, corrupt := map[[2]int]bool{}, map[[2]int]bool{}
	for _, ft := range p.faults {
		switch ft.Kind {
		case KindLateJoin:
			late[[2]int{ft.Site - 1, ft.Node - 1}] = true
		case KindCorruptPeer:
			corrupt[[2]int{ft.Site - 1, ft.Node - 1}] = true
		}
	}
	f.bySite = make([][]*simNode, len(f.sites))
	for si, site := range f.sites {
		for ni := range sc.Sites.Nodes {
			k := 1 - sc.Sites.Heterogeneity*rng.Float64()
			n := &simNode{name: fmt.Sprintf("s%d-n%d", si+1, ni+1), site: site, siteIdx: si,
				up: sc.scaled(p.lan) * k, down: sc.scaled(p.lan) * k, late: late[[2]int{si, ni}]}
			ep, err := f.net.AddNode(site, n.up, n.down)
			if err != nil {
				return err
			}
			n.ep = ep
			f.nodes = append(f.nodes, n)
			f.bySite[si] = append(f.bySite[si], n)
			n.cfg.CorruptServing = corrupt[[2]int{si, ni}]
		}
	}
	tokens := make([]string, len(f.sites))
	for i, s := range f.sites {
		tok, err := f.coord.CreateToken(coordinator.TokenRequest{Site: s, Unlimited: true})
		if err != nil {
			return fmt.Errorf("%w: token for %s: %w", ErrSetup, s, err)
		}
		tokens[i] = tok.Token
	}
	addr := f.coord.P2PAddrs()[0]
	return workers(len(f.nodes), 8, func(i int) error {
		n := f.nodes[i]
		dir := filepath.Join(f.root, n.name)
		ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
		listen := []string{n.ep.Addr(nodePort)}
		enr, err := node.Enroll(ectx, node.EnrollOptions{Dir: dir, Coordinator: addr, Token: tokens[n.siteIdx], Name: n.name,
			Listen: listen, Advertise: listen, Network: n.ep})
		cancel()
		if err != nil {
			return fmt.Errorf("%w: enroll %s: %w", ErrSetup, n.name, err)
		}
		if n.id, err = peer.Decode(enr.NodeID); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrSetup, n.name, err)
		}
		f.configure(n, dir)
		return nil
	})
}

func (f *fleet) configure(n *simNode, dir string) {
	p := f.sc.s
	corrupt := n.cfg.CorruptServing
	c := node.TestConfig(dir)
	c.NoGossip = false
	c.FastGossip = f.sc.Tuning.Gossip == "fast"
	c.SyncInterval = p.syncInterval
	c.CallTimeout = p.callTimeout
	c.Strategy = f.strategy
	// A failed download waits as long as on a real node: the network
	// resets connections under faults (a partition, a killed relay), and
	// the test backoffs (10–100 ms) would spend every attempt in the
	// first second of a cut.
	def := node.DefaultConfig(dir)
	c.JobAttempts, c.JobBackoffMin, c.JobBackoffMax = def.JobAttempts, def.JobBackoffMin, def.JobBackoffMax
	if f.strategy == "relay" {
		// One relay per site, however big: the LanGuard/BigFix way.
		c.RelaysPerSite = f.sc.Sites.Nodes + 1
	}
	n.store = newTimedStore()
	c.Store = n.store
	n.inst = &checkInstaller{store: n.store}
	c.Installer = n.inst
	n.tr = f.gossip.NewTransport(n.name)
	c.GossipTransport = n.tr
	c.Network = n.ep
	c.Listen = []string{n.ep.Addr(nodePort)}
	c.Advertise = c.Listen
	c.UpBps, c.DownBps = int64(n.up), int64(n.down)
	// The floor is a rate: scaled like the links, so a scaled transfer is
	// cut when the unscaled one would be.
	c.SourceFloorBps = int64(f.sc.scaled(float64(c.SourceFloorBps)))
	c.CorruptServing = corrupt
	c.Logger = f.log.With("who", n.name)
	n.cfg = c
}

func (f *fleet) start(n *simNode) error {
	ctx, cancel := context.WithCancel(context.Background())
	nd, err := node.Start(ctx, n.cfg)
	if err != nil {
		cancel()
		return fmt.Errorf("%w: start %s: %w", ErrSetup, n.name, err)
	}
	n.mu.Lock()
	n.n, n.cancel, n.started = nd, cancel, true
	n.mu.Unlock()
	return nil
}

// kill crashes n: its connections and gossip transport fail at once, as
// a machine that lost power, then the node stops.
func (f *fleet) kill(n *simNode) {
	n.mu.Lock()
	if n.killed {
		n.mu.Unlock()
		return
	}
	n.killed = true
	nd, cancel := n.n, n.cancel
	n.mu.Unlock()
	n.ep.Crash()
	n.tr.Crash()
	if nd != nil {
		cancel()
		if err := nd.Close(); err != nil {
			f.log.Debug("close killed node", "node", n.name, "err", err)
		}
	}
}

// waitSites waits until every site's running nodes see each other, agree
// on their relays, and the coordinator knows them (as
// integration/cluster_test.go does).
func (f *fleet) waitSites(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, why := f.converged()
		if ok {
			return nil
		}
		last = why
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: sites not converged after %s: %s", ErrTimeout, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
}

func (f *fleet) converged() (bool, string) {
	coordSites := f.coord.Sites()
	for si, ns := range f.bySite {
		var live []*node.Node
		for _, n := range ns {
			if nd := n.running(); nd != nil {
				live = append(live, nd)
			}
		}
		want := ""
		for _, nd := range live {
			if got := nd.SiteMembers(); got != len(live) {
				return false, fmt.Sprintf("%s: a node sees %d of %d members", f.sites[si], got, len(live))
			}
			r := strings.Join(nd.Relays(), ",")
			if want == "" {
				want = r
			}
			if r == "" || r != want {
				return false, fmt.Sprintf("%s: relays %q vs %q", f.sites[si], r, want)
			}
		}
		first, _, _ := strings.Cut(want, ",")
		found := false
		for _, s := range coordSites {
			if s.Site != f.sites[si] {
				continue
			}
			for _, r := range s.Relays {
				if first != "" && strings.Contains(r, first) {
					found = true
				}
			}
		}
		if !found && len(live) > 0 {
			return false, "the coordinator does not know the relays of " + f.sites[si] + " yet"
		}
	}
	return true, ""
}

// close stops every node and the coordinator.
func (f *fleet) close() {
	f.wg.Wait()
	_ = workers(len(f.nodes), 32, func(i int) error {
		n := f.nodes[i]
		n.mu.Lock()
		nd, cancel, stop := n.n, n.cancel, n.started && !n.killed
		n.killed = true
		n.mu.Unlock()
		if stop {
			cancel()
			_ = nd.Close()
		}
		return nil
	})
	if f.coord != nil {
		_ = f.coord.Close()
	}
}
