package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"github.com/relaymesh/relaymesh/internal/poll"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/relaymesh/relaymesh/internal/testlog"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// TestMain fails the run when a test leaves a goroutine behind: the
// coordinator's loops, libp2p, badger and the admin API all have owners.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger logs to t (see internal/testlog).
func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	return testlog.New(t, slog.LevelInfo)
}

// fakeClock is the injected Config.Now: it only moves when told.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UTC().Truncate(time.Second).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 20*time.Second, 5*time.Millisecond, what, poll.Bool(cond))
}

// checkErr fails unless errors.Is(err, want) and err's message holds every
// string of contains.
func checkErr(t testing.TB, err, want error, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want %v", want)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

// harness is one coordinator in a directory, started on loopback with an
// injected clock, and an admin API client.
type harness struct {
	// mutate, when set, changes the config before Open (set it and call
	// start on a harness made with &harness{…}: see newHarnessWith).
	mutate func(*Config)
	t      testing.TB
	dir    string
	clk    *fakeClock
	c      *Coordinator
	cl     *Client
	ctx    context.Context
	log    *slog.Logger
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessLog(t, testLogger(t))
}

// newHarnessLog is newHarness with a given logger (benchmarks discard logs:
// b.Log always prints).
func newHarnessLog(t testing.TB, log *slog.Logger) *harness {
	t.Helper()
	dir := t.TempDir()
	if _, err := Init(dir); err != nil {
		t.Fatalf("Init: %v", err)
	}
	h := &harness{t: t, dir: dir, clk: newFakeClock(), ctx: testCtx(t), log: log}
	h.start()
	return h
}

// newHarnessWith is newHarness whose config mutate changes.
func newHarnessWith(t testing.TB, mutate func(*Config)) *harness {
	t.Helper()
	dir := t.TempDir()
	if _, err := Init(dir); err != nil {
		t.Fatalf("Init: %v", err)
	}
	h := &harness{t: t, dir: dir, clk: newFakeClock(), ctx: testCtx(t), log: testLogger(t), mutate: mutate}
	h.start()
	return h
}

func (h *harness) config() Config {
	cfg := TestConfig(h.dir)
	cfg.Now = h.clk.Now
	cfg.Logger = h.log
	if h.mutate != nil {
		h.mutate(&cfg)
	}
	return cfg
}

func (h *harness) start() {
	h.t.Helper()
	c, err := Open(h.config())
	if err != nil {
		h.t.Fatalf("Open: %v", err)
	}
	if err := c.Start(h.ctx); err != nil {
		c.Close()
		h.t.Fatalf("Start: %v", err)
	}
	cl, err := NewClient(c.AdminURL(), c.AdminToken(), "")
	if err != nil {
		c.Close()
		h.t.Fatalf("NewClient: %v", err)
	}
	cl.HTTP.Transport = newTransport()
	h.c, h.cl = c, cl
	h.t.Cleanup(func() {
		cl.HTTP.CloseIdleConnections()
		if err := c.Close(); err != nil {
			h.t.Errorf("Close: %v", err)
		}
	})
}

// restart closes the coordinator and opens it again on the same directory.
func (h *harness) restart() {
	h.t.Helper()
	h.cl.HTTP.CloseIdleConnections()
	if err := h.c.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
	h.start()
}

func (h *harness) token(req TokenRequest) string {
	h.t.Helper()
	tok, err := h.cl.CreateToken(h.ctx, req)
	if err != nil {
		h.t.Fatalf("CreateToken(%+v): %v", req, err)
	}
	return tok.Token
}

func (h *harness) deployment(id string) *DeploymentView {
	h.t.Helper()
	v, err := h.cl.Deployment(h.ctx, id)
	if err != nil {
		h.t.Fatalf("Deployment(%s): %v", id, err)
	}
	return v
}

func rowOf(t testing.TB, v *DeploymentView, node string) RowView {
	t.Helper()
	for _, r := range v.Nodes {
		if r.Node == node {
			return r
		}
	}
	t.Fatalf("deployment %s has no row for %s", v.ID, node)
	return RowView{}
}

// publishExecute publishes an archive-less package through the API.
func (h *harness) publishExecute(name string) string {
	h.t.Helper()
	m := core.Manifest{
		Schema: core.ManifestSchema, Name: name, Version: "1", OS: "linux", Arch: "amd64",
		Action: core.ActionExecute, Command: []string{"/bin/true"}, Priority: 5,
	}
	b, err := m.Encode()
	if err != nil {
		h.t.Fatal(err)
	}
	rec, err := h.cl.Publish(h.ctx, b)
	if err != nil {
		h.t.Fatalf("Publish %s: %v", name, err)
	}
	return rec.ID
}

// fakeNode is a plain libp2p host speaking the node side of the
// coordinator's protocols.
type fakeNode struct {
	t      testing.TB
	name   string
	id     crypto.PrivKey
	key    ed25519.PrivateKey
	h      host.Host
	coord  peer.ID
	clk    *fakeClock
	seq    uint64
	ver    *core.Verifier
	pushMu sync.Mutex
	pushed []*core.Envelope
}

func newFakeNode(t testing.TB, hs *harness, name string) *fakeNode {
	t.Helper()
	id, err := p2p.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	h, err := p2p.NewHost(p2p.DefaultHostConfig(id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	n := &fakeNode{t: t, name: name, id: id, key: p2p.Ed25519Raw(id), h: h, clk: hs.clk}
	p2p.Handle(h, core.ProtoOrders, 1<<20, func(_ context.Context, _ peer.ID, req *core.OrdersPush) (*core.OrdersAck, error) {
		n.pushMu.Lock()
		defer n.pushMu.Unlock()
		n.pushed = append(n.pushed, req.Orders...)
		return &core.OrdersAck{Accepted: len(req.Orders)}, nil
	})
	n.connect(hs)
	return n
}

func (n *fakeNode) ID() string { return n.h.ID().String() }

// connect dials the coordinator at its current addresses.
func (n *fakeNode) connect(hs *harness) {
	n.t.Helper()
	ai, err := p2p.ParseAddrInfo(hs.c.P2PAddrs()[0])
	if err != nil {
		n.t.Fatal(err)
	}
	if err := n.h.Connect(hs.ctx, ai); err != nil {
		n.t.Fatalf("%s: connect to coordinator: %v", n.name, err)
	}
	n.coord = ai.ID
}

func (n *fakeNode) info() core.NodeInfo {
	var addrs []string
	for _, a := range n.h.Addrs() {
		addrs = append(addrs, a.String())
	}
	return core.NodeInfo{Hostname: n.name, OS: "linux", Arch: "amd64", Version: "test", Addrs: addrs}
}

func (n *fakeNode) enroll(token string) (*core.EnrollResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return p2p.Call[core.EnrollRequest, core.EnrollResponse](ctx, n.h, n.coord, core.ProtoEnroll,
		&core.EnrollRequest{Token: token, Info: n.info()}, 1<<20)
}

// mustEnroll enrolls and pins the order key from the response.
func (n *fakeNode) mustEnroll(token string) *core.EnrollResponse {
	n.t.Helper()
	resp, err := n.enroll(token)
	if err != nil {
		n.t.Fatalf("%s: enroll: %v", n.name, err)
	}
	var keys []ed25519.PublicKey
	for _, pem := range resp.OrderKeys {
		k, err := core.ParsePublicKey([]byte(pem))
		if err != nil {
			n.t.Fatalf("%s: order key: %v", n.name, err)
		}
		keys = append(keys, k)
	}
	n.ver = &core.Verifier{Keys: core.PinnedKeys(keys...), Self: n.ID(), Seq: &core.MemSeqStore{}, Now: n.clk.Now}
	return resp
}

func (n *fakeNode) sync(after uint64) (*core.SyncResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return p2p.Call[core.SyncRequest, core.SyncResponse](ctx, n.h, n.coord, core.ProtoSync,
		&core.SyncRequest{AfterSeq: after, Info: n.info()}, 8<<20)
}

// syncOrders syncs and verifies every order as the node would.
func (n *fakeNode) syncOrders(after uint64) []*core.Order {
	n.t.Helper()
	resp, err := n.sync(after)
	if err != nil {
		n.t.Fatalf("%s: sync: %v", n.name, err)
	}
	var out []*core.Order
	for _, e := range resp.Orders {
		o, err := n.ver.Accept(e)
		if err != nil {
			n.t.Fatalf("%s: order refused: %v", n.name, err)
		}
		out = append(out, o)
	}
	return out
}

// orderIDs syncs and returns the IDs of the authentic orders, without the
// node's replay check, so a test can look again.
func (n *fakeNode) orderIDs(after uint64) []string {
	n.t.Helper()
	resp, err := n.sync(after)
	if err != nil {
		n.t.Fatalf("%s: sync: %v", n.name, err)
	}
	var out []string
	for _, e := range resp.Orders {
		o, err := n.ver.Check(e)
		if err != nil && !errors.Is(err, core.ErrReplay) {
			n.t.Fatalf("%s: order refused: %v", n.name, err)
		}
		out = append(out, o.ID)
	}
	return out
}

func (n *fakeNode) pushedOrders() []*core.Envelope {
	n.pushMu.Lock()
	defer n.pushMu.Unlock()
	return append([]*core.Envelope(nil), n.pushed...)
}

// status builds a report with the node's next sequence number.
func (n *fakeNode) status(order string, st core.State, exit int) *core.Status {
	n.seq++
	return &core.Status{
		Schema: core.StatusSchema, NodeID: n.ID(), OrderID: order, Seq: n.seq, State: st,
		ExitCode: exit, Time: n.clk.Now(), BytesFetched: 3 << 20, Output: "ok\n", Detail: string(st),
	}
}

func (n *fakeNode) sign(s *core.Status, key ed25519.PrivateKey) *core.Envelope {
	n.t.Helper()
	e, err := core.SignStatus(s, key)
	if err != nil {
		n.t.Fatal(err)
	}
	return e
}

func (n *fakeNode) send(reports ...*core.Envelope) (*core.StatusAck, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return p2p.Call[core.StatusBatch, core.StatusAck](ctx, n.h, n.coord, core.ProtoStatus,
		&core.StatusBatch{Reports: reports}, 1<<20)
}

// report signs and sends one report per state, in order, and checks that
// each was applied.
func (n *fakeNode) report(order string, states ...core.State) {
	n.t.Helper()
	var envs []*core.Envelope
	for _, st := range states {
		envs = append(envs, n.sign(n.status(order, st, 0), n.key))
	}
	ack, err := n.send(envs...)
	if err != nil {
		n.t.Fatalf("%s: send status: %v", n.name, err)
	}
	for i, r := range ack.Results {
		if r != core.AckApplied {
			n.t.Fatalf("%s: report %d (%s) = %s %v, want applied", n.name, i, states[i], r, ack.Errors)
		}
	}
}

// randomPackage chunks a random archive of size bytes.
func randomPackage(t testing.TB, name string, size, fragSize int) (core.Manifest, map[cid.Cid][]byte) {
	t.Helper()
	archive := make([]byte, size)
	rand.Read(archive)
	frags := map[cid.Cid][]byte{}
	info, err := core.Chunk(bytes.NewReader(archive), fragSize, func(c cid.Cid, data []byte) error {
		frags[c] = bytes.Clone(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m := core.Manifest{
		Schema: core.ManifestSchema, Name: name, Version: "1.0.0", OS: "linux", Arch: "amd64",
		Action: core.ActionLaunch, Command: []string{"./install.sh", "--quiet"}, Priority: 5, TimeoutSec: 600,
		Size: info.Size, Digest: info.Digest, FragmentSize: fragSize,
	}
	for _, f := range info.Fragments {
		m.Fragments = append(m.Fragments, f.String())
	}
	return m, frags
}

// newTransport is a private HTTP transport, so a harness can close its idle
// connections without touching other tests'.
func newTransport() *http.Transport {
	return http.DefaultTransport.(*http.Transport).Clone()
}
