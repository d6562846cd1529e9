package coordinator

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// benchNode is an enrolled node's identity, without a host.
type benchNode struct {
	pid peer.ID
	key ed25519.PrivateKey
}

func newBenchNodes(tb testing.TB, n int) []benchNode {
	tb.Helper()
	out := make([]benchNode, n)
	for i := range out {
		id, err := p2p.GenerateIdentity()
		if err != nil {
			tb.Fatal(err)
		}
		pid, err := peer.IDFromPrivateKey(id)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = benchNode{pid: pid, key: p2p.Ed25519Raw(id)}
	}
	return out
}

// addNodes writes enrolled nodes straight into the state, as many
// enrollments would, in a few transactions instead of one fsync each.
func addNodes(tb testing.TB, c *Coordinator, nodes []benchNode, sites int) {
	tb.Helper()
	now := c.now().UTC()
	recs := make([]*NodeRecord, len(nodes))
	pairs := make([]kvPair, len(nodes))
	for i, n := range nodes {
		recs[i] = &NodeRecord{
			ID: n.pid.String(), Name: fmt.Sprintf("host-%05d", i), Site: fmt.Sprintf("site-%03d", i%sites),
			Tags: []string{"pos"}, OS: "linux", Arch: "amd64", Version: "1.4.2",
			Addrs:      []string{fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/7472", i>>16&255, i>>8&255, i&255)},
			GossipAddr: fmt.Sprintf("10.%d.%d.%d:7946", i>>16&255, i>>8&255, i&255),
			Relay:      i%50 == 0, FirstSeen: now, LastSeen: now,
		}
		pairs[i] = jsonPair(keyNode+recs[i].ID, recs[i])
	}
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if err := c.st.write(pairs...); err != nil {
		tb.Fatal(err)
	}
	for i, r := range recs {
		c.st.nodes[r.ID] = r
		c.st.known.Store(r.ID, struct{}{})
		c.st.pubkeys[r.ID] = nodes[i].key.Public().(ed25519.PublicKey)
	}
}

// openBench opens (without Start) an initialised coordinator.
func openBench(b *testing.B) *Coordinator {
	b.Helper()
	dir := b.TempDir()
	if _, err := Init(dir); err != nil {
		b.Fatal(err)
	}
	cfg := TestConfig(dir)
	cfg.Logger = slog.New(slog.DiscardHandler)
	c, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkStatusIntake feeds batches of 500 node-signed reports (as a
// relay sends them) for a deployment to 1,000 nodes through Intake:
// signature checks, dedupe, row updates and the synced write. One op is
// one batch. "serial" is one relay; "relays-4" is four relays, each
// carrying its own 250 nodes, calling Intake at once, so one batch's
// signature checks overlap another's write.
func BenchmarkStatusIntake(b *testing.B) {
	const (
		fleet = 1000
		batch = 500
	)
	b.Run("serial", func(b *testing.B) {
		c, nodes, order := intakeSetup(b, fleet)
		batches := signBatches(b, nodes, order, b.N, batch)
		b.ResetTimer()
		for i := range b.N {
			checkApplied(b, c.Intake(batches[i]))
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "reports/s")
	})
	b.Run("relays-4", func(b *testing.B) {
		const relays = 4
		c, nodes, order := intakeSetup(b, fleet)
		per := make([][][]*core.Envelope, relays)
		for r := range relays {
			n := b.N / relays // b.N batches in all, shared out
			if r < b.N%relays {
				n++
			}
			per[r] = signBatches(b, nodes[r*fleet/relays:(r+1)*fleet/relays], order, n, batch)
		}
		b.ResetTimer()
		var wg sync.WaitGroup
		for r := range relays {
			wg.Go(func() {
				for _, bt := range per[r] {
					checkApplied(b, c.Intake(bt))
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "reports/s")
	})
}

// intakeSetup opens a coordinator with fleet nodes and one deployment to all.
func intakeSetup(b *testing.B, fleet int) (*Coordinator, []benchNode, string) {
	b.Helper()
	c := openBench(b)
	nodes := newBenchNodes(b, fleet)
	addNodes(b, c, nodes, 20)
	pkg, err := c.BuildPackage(core.Manifest{
		Name: "agent", Version: "1.4.3", OS: "linux", Arch: "amd64", Action: core.ActionExecute,
		Command: []string{"/usr/bin/agent-update", "--quiet"}, Priority: 5,
	}, nil, 0)
	if err != nil {
		b.Fatal(err)
	}
	d, err := c.CreateDeployment(DeployRequest{Packages: []string{pkg.ID}, All: true})
	if err != nil {
		b.Fatal(err)
	}
	return c, nodes, d.ID
}

// signBatches pre-signs n batches of size reports over nodes, round robin:
// each report carries its node's next sequence number and walks the node
// through the states of an install.
func signBatches(b *testing.B, nodes []benchNode, order string, n, size int) [][]*core.Envelope {
	b.Helper()
	states := []core.State{core.StateNotified, core.StateDownloading, core.StateDownloaded, core.StateInstalling, core.StateSuccess}
	output := strings.Repeat("Setting up agent (1.4.3) ...\n", 8)
	seqs := make([]uint64, len(nodes))
	t0 := time.Now().UTC()
	out := make([][]*core.Envelope, n)
	for i := range out {
		out[i] = make([]*core.Envelope, size)
		for j := range size {
			k := (i*size + j) % len(nodes)
			seqs[k]++
			st := states[(seqs[k]-1)%uint64(len(states))]
			s := &core.Status{
				Schema: core.StatusSchema, NodeID: nodes[k].pid.String(), OrderID: order, Seq: seqs[k], State: st,
				Time: t0.Add(time.Duration(seqs[k]) * time.Second), BytesFetched: 48 << 20, Detail: string(st),
			}
			if st == core.StateSuccess {
				s.Output = output
			}
			e, err := core.SignStatus(s, nodes[k].key)
			if err != nil {
				b.Fatal(err)
			}
			out[i][j] = e
		}
	}
	return out
}

func checkApplied(b *testing.B, ack *core.StatusAck) {
	for j, r := range ack.Results {
		if r != core.AckApplied {
			b.Errorf("report %d: %s %v", j, r, ack.Errors)
			return
		}
	}
}

// discardWriter is an http.ResponseWriter that drops the body.
type discardWriter struct{ h http.Header }

func (w discardWriter) Header() http.Header         { return w.h }
func (w discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w discardWriter) WriteHeader(int)             {}

// BenchmarkNodesList10k times what `relaymesh nodes list` costs with
// 10,000 enrolled nodes: the server-side listing and its JSON, and the
// whole round trip through the admin API and the client.
func BenchmarkNodesList10k(b *testing.B) {
	const fleet = 10_000
	h := newHarnessLog(b, slog.New(slog.DiscardHandler))
	addNodes(b, h.c, newBenchNodes(b, fleet), 40)
	msPerOp := func(b *testing.B) {
		b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/op")
	}

	b.Run("server", func(b *testing.B) {
		w := discardWriter{http.Header{}}
		for b.Loop() {
			ns := h.c.Nodes()
			if len(ns) != fleet {
				b.Fatalf("%d nodes", len(ns))
			}
			writeJSON(w, http.StatusOK, ns)
		}
		msPerOp(b)
	})
	b.Run("api", func(b *testing.B) {
		for b.Loop() {
			ns, err := h.cl.Nodes(h.ctx)
			if err != nil || len(ns) != fleet {
				b.Fatalf("%d nodes, %v", len(ns), err)
			}
		}
		msPerOp(b)
	})
	b.Run("json-size", func(b *testing.B) {
		var n countWriter
		for b.Loop() {
			n = 0
			enc := json.NewEncoder(&n)
			enc.SetIndent("", "  ")
			if err := enc.Encode(h.c.Nodes()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/(1<<20), "MiB")
	})
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

var _ io.Writer = (*countWriter)(nil)
