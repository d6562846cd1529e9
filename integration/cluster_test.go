// Package integration runs the real coordinator and node code in one
// process, with real libp2p hosts and real memberlist pools on loopback.
package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"github.com/relaymesh/relaymesh/internal/poll"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node"
	"github.com/relaymesh/relaymesh/p2p"
)

type testNode struct {
	name, site, dir string
	n               *node.Node
	cancel          context.CancelFunc
	closed          bool
}

type cluster struct {
	t     *testing.T
	root  string
	coord *coordinator.Coordinator
	log   *slog.Logger
	mu    sync.Mutex
	nodes []*testNode
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("RELAYMESH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newCluster(t *testing.T, mutate func(*coordinator.Config)) *cluster {
	t.Helper()
	return newClusterLog(t, testLogger(t), mutate)
}

// newClusterLog is newCluster whose coordinator and nodes log to log.
func newClusterLog(t *testing.T, log *slog.Logger, mutate func(*coordinator.Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, root: t.TempDir(), log: log}
	dir := filepath.Join(c.root, "coordinator")
	if _, err := coordinator.Init(dir); err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.TestConfig(dir)
	cfg.Logger = c.log.With("who", "coordinator")
	if mutate != nil {
		mutate(&cfg)
	}
	co, err := coordinator.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.coord = co
	t.Cleanup(func() {
		c.mu.Lock()
		nodes := c.nodes
		c.mu.Unlock()
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() { c.closeNode(n) })
		}
		wg.Wait()
		co.Close()
	})
	return c
}

func (c *cluster) closeNode(n *testNode) {
	c.mu.Lock()
	if n.closed {
		c.mu.Unlock()
		return
	}
	n.closed = true
	c.mu.Unlock()
	n.cancel()
	if err := n.n.Close(); err != nil {
		c.t.Logf("close %s: %v", n.name, err)
	}
}

// addSite enrolls and starts count nodes in site.
func (c *cluster) addSite(site string, count int, mutate func(*node.Config)) []*testNode {
	c.t.Helper()
	tok, err := c.coord.CreateToken(coordinator.TokenRequest{Site: site, Uses: max(count, 1)})
	if err != nil {
		c.t.Fatal(err)
	}
	var out []*testNode
	c.mu.Lock()
	have := 0
	for _, n := range c.nodes {
		if n.site == site {
			have++
		}
	}
	c.mu.Unlock()
	for i := range count {
		name := fmt.Sprintf("%s-%d", site, have+i+1)
		dir := filepath.Join(c.root, name)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := node.Enroll(ctx, node.EnrollOptions{Dir: dir, Coordinator: c.coord.P2PAddrs()[0], Token: tok.Token, Name: name})
		cancel()
		if err != nil {
			c.t.Fatalf("enroll %s: %v", name, err)
		}
		cfg := node.TestConfig(dir)
		cfg.NoGossip = false
		cfg.Logger = c.log.With("who", name)
		if mutate != nil {
			mutate(&cfg)
		}
		nctx, ncancel := context.WithCancel(context.Background())
		n, err := node.Start(nctx, cfg)
		if err != nil {
			ncancel()
			c.t.Fatalf("start %s: %v", name, err)
		}
		tn := &testNode{name: name, site: site, dir: dir, n: n, cancel: ncancel}
		c.mu.Lock()
		c.nodes = append(c.nodes, tn)
		c.mu.Unlock()
		out = append(out, tn)
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	poll.Until(t, timeout, 50*time.Millisecond, what, cond)
}

// waitSites waits until every site's live nodes agree on their relays and
// the coordinator knows them.
func (c *cluster) waitSites(sites map[string][]*testNode, timeout time.Duration) {
	c.t.Helper()
	eventually(c.t, timeout, "sites converged", func() (bool, string) {
		for site, ns := range sites {
			var want string
			live := 0
			for _, n := range ns {
				if !n.closed {
					live++
				}
			}
			for _, n := range ns {
				if n.closed {
					continue
				}
				if got := n.n.SiteMembers(); got != live {
					return false, fmt.Sprintf("%s sees %d of %d members", n.name, got, live)
				}
				r := strings.Join(n.n.Relays(), ",")
				if want == "" {
					want = r
				}
				if r == "" || r != want {
					return false, fmt.Sprintf("%s: relays %q vs %q", site, r, want)
				}
			}
			found := false
			for _, s := range c.coord.Sites() {
				if s.Site == site && len(s.Relays) > 0 && strings.Contains(s.Relays[0], want) {
					found = true
				}
			}
			if !found {
				return false, "coordinator does not know the relay of " + site + " yet"
			}
		}
		return true, ""
	})
}

// publish builds a random package of size bytes whose command writes a
// marker file per node.
func (c *cluster) publish(name string, size int) (*coordinator.PackageRecord, string) {
	c.t.Helper()
	markers := filepath.Join(c.root, "markers-"+name)
	if err := os.MkdirAll(markers, 0o755); err != nil {
		c.t.Fatal(err)
	}
	var archive bytes.Buffer
	writeTarGz(c.t, &archive, map[string][]byte{
		"install.sh": []byte("#!/bin/sh\nprintf ok > \"" + markers + "/$RELAYMESH_NODE_NAME\"\n"),
		"payload":    randomBytes(size),
	})
	m := core.Manifest{Name: name, Version: "1", OS: "any", Arch: "any", Action: core.ActionLaunch, Command: []string{"sh", "install.sh"}, Priority: 5}
	rec, err := c.coord.BuildPackage(m, &archive, core.DefaultFragmentSize)
	if err != nil {
		c.t.Fatal(err)
	}
	return rec, markers
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// siteIn returns the bytes that crossed into site from outside it (the
// coordinator or other sites), summed over its nodes' meters, and the
// snapshot per node for later deltas.
func siteIn(ns []*testNode) map[string]int64 {
	out := map[string]int64{}
	for _, n := range ns {
		snap := n.n.Meter().Snapshot()
		out[n.name] = snap[p2p.ClassCoordinator].Recv + snap[p2p.ClassOtherSite].Recv
	}
	return out
}

func sum(m map[string]int64) int64 {
	var s int64
	for _, v := range m {
		s += v
	}
	return s
}

func coordSent(co *coordinator.Coordinator) int64 {
	var s int64
	for _, c := range co.Meter().Snapshot() {
		s += c.Sent
	}
	return s
}
