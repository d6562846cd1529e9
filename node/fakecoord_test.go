package node

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// fakeCoord is a coordinator in miniature: enrollment with one token,
// sync of the orders it signed, status intake with (node, seq) dedup, and
// fragments from a memory store, counting what it serves.
type fakeCoord struct {
	t     *testing.T
	ident crypto.PrivKey
	key   ed25519.PrivateKey
	token string
	store *cache.Memory

	mu      sync.Mutex
	h       host.Host
	listen  string
	seq     uint64
	orders  []*core.Envelope
	reports []*core.Status
	scans   []*core.ScanReport
	seen    map[string]bool // node/seq
	served  map[string]int  // CID → fragments served
	held    map[string]bool // CIDs answered "not found"
	hostile atomic.Bool     // status handler fails
	syncs   atomic.Int32
	maxLife atomic.Int64 // the enrollment's max order lifetime, seconds
}

func newFakeCoord(t *testing.T) *fakeCoord {
	t.Helper()
	ident, err := p2p.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	key, err := core.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCoord{t: t, ident: ident, key: key, token: "good-token", store: cache.NewMemory(0),
		listen: "/ip4/127.0.0.1/tcp/0", seen: map[string]bool{}, served: map[string]int{}, held: map[string]bool{}}
	f.start()
	t.Cleanup(f.stop)
	return f
}

// start brings the host up, on the same port as before after a stop.
func (f *fakeCoord) start() {
	f.t.Helper()
	h, err := p2p.NewHost(p2p.HostConfig{ListenAddrs: []string{f.listen}, Identity: f.ident, Gater: &p2p.Gater{Open: true}})
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.h = h
	f.listen = h.Addrs()[0].String()
	f.mu.Unlock()
	p2p.Handle(h, core.ProtoEnroll, 1<<20, f.enroll)
	p2p.Handle(h, core.ProtoSync, 1<<20, f.sync)
	p2p.Handle(h, core.ProtoStatus, 32<<20, f.status)
	if err := p2p.ServeFragments(h, p2p.FragmentServerConfig{Source: f}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeCoord) stop() {
	f.mu.Lock()
	h := f.h
	f.h = nil
	f.mu.Unlock()
	if h != nil {
		_ = h.Close()
	}
}

func (f *fakeCoord) host() host.Host {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.h
}

// addr is the coordinator's multiaddr with /p2p/ID.
func (f *fakeCoord) addr() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, _ := peer.IDFromPrivateKey(f.ident)
	return f.listen + "/p2p/" + id.String()
}

func (f *fakeCoord) enroll(_ context.Context, from peer.ID, req *core.EnrollRequest) (*core.EnrollResponse, error) {
	if req.Token != f.token {
		return nil, errors.New("join token unknown or used up")
	}
	der, _ := x509.MarshalPKIXPublicKey(f.key.Public())
	gk := make([]byte, 32)
	_, _ = rand.Read(gk)
	return &core.EnrollResponse{
		NodeID: from.String(), Site: "branch-1", Tags: []string{"pos"},
		OrderKeys:   []string{string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))},
		GossipKeys:  [][]byte{gk},
		Coordinator: f.host().ID().String(),

		MaxOrderLifetime: f.maxLife.Load(),
	}, nil
}

func (f *fakeCoord) sync(_ context.Context, from peer.ID, req *core.SyncRequest) (*core.SyncResponse, error) {
	f.syncs.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*core.Envelope
	for _, e := range f.orders {
		o, _ := core.DecodeOrder(e.Payload)
		if o.Seq > req.AfterSeq && o.Addressed(from.String()) {
			out = append(out, e)
		}
	}
	return &core.SyncResponse{Orders: out}, nil
}

func (f *fakeCoord) status(_ context.Context, from peer.ID, req *core.StatusBatch) (*core.StatusAck, error) {
	if f.hostile.Load() {
		return nil, errors.New("coordinator overloaded")
	}
	pub, err := p2p.PeerPublicKey(from)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ack := &core.StatusAck{}
	for _, e := range req.Reports {
		if e.Type == core.TypeScan {
			r, err := core.OpenScan(e, from.String(), pub)
			switch {
			case err != nil:
				ack.Results = append(ack.Results, core.AckRejected)
			case f.seen[fmt.Sprint(r.NodeID, "/", r.Seq)]:
				ack.Results = append(ack.Results, core.AckDuplicate)
			default:
				f.seen[fmt.Sprint(r.NodeID, "/", r.Seq)] = true
				f.scans = append(f.scans, r)
				ack.Results = append(ack.Results, core.AckApplied)
			}
			continue
		}
		s, err := core.OpenStatus(e, from.String(), pub)
		switch {
		case err != nil:
			ack.Results = append(ack.Results, core.AckRejected)
		case f.seen[fmt.Sprint(s.NodeID, "/", s.Seq)]:
			ack.Results = append(ack.Results, core.AckDuplicate)
		default:
			f.seen[fmt.Sprint(s.NodeID, "/", s.Seq)] = true
			f.reports = append(f.reports, s)
			ack.Results = append(ack.Results, core.AckApplied)
		}
	}
	r := &core.Receipt{Schema: core.ReceiptSchema}
	for i, e := range req.Reports {
		r.Entries = append(r.Entries, core.ReceiptEntry{Digest: core.ReportDigest(e), Result: ack.Results[i]})
	}
	if ack.Receipt, err = core.SignReceipt(r, f.key); err != nil {
		return nil, err
	}
	return ack, nil
}

// OpenFragment serves the memory store, counting, and holds back the
// CIDs in held.
func (f *fakeCoord) OpenFragment(_ context.Context, c cid.Cid) (io.ReadCloser, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held[c.String()] {
		return nil, 0, p2p.ErrNotFound
	}
	r, n, err := f.store.Open(c)
	if errors.Is(err, cache.ErrNotFound) {
		return nil, 0, p2p.ErrNotFound
	}
	if err == nil {
		f.served[c.String()]++
	}
	return r, n, err
}

func (f *fakeCoord) hold(cids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cids {
		f.held[c] = true
	}
}

func (f *fakeCoord) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.held)
}

func (f *fakeCoord) servedCount() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps(f.served)
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// statuses returns the reports received for order, in node sequence order.
func (f *fakeCoord) statuses(order string) []*core.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*core.Status
	for _, s := range f.reports {
		if s.OrderID == order {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *core.Status) int { return int(a.Seq) - int(b.Seq) })
	return out
}

func (f *fakeCoord) scanReports() []*core.ScanReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.scans)
}

func (f *fakeCoord) allReports() []*core.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reports)
}

// waitState waits until a report of order in state st arrived.
func (f *fakeCoord) waitState(t *testing.T, order string, st core.State) *core.Status {
	t.Helper()
	var got *core.Status
	eventually(t, 30*time.Second, fmt.Sprintf("order %s never reported %s (got %v)", order, st, statesOf(f.statuses(order))), func() bool {
		for _, s := range f.statuses(order) {
			if s.State == st {
				got = s
				return true
			}
		}
		return false
	})
	return got
}

func statesOf(ss []*core.Status) []core.State {
	out := make([]core.State, len(ss))
	for i, s := range ss {
		out[i] = s.State
	}
	return out
}

// testPackage is a launch package: a tar.gz of run.sh and filler, cut
// into 64 KiB fragments.
type testPackage struct {
	id    string
	frags []string
}

// addPackage builds a package whose script runs script under /bin/sh,
// with extra bytes of incompressible filler so it spans several fragments.
func (f *fakeCoord) addPackage(script string, filler int) testPackage {
	f.t.Helper()
	return f.addPackageWith(script, filler, nil)
}

// addPackageWith is addPackage with a change to the manifest.
func (f *fakeCoord) addPackageWith(script string, filler int, mut func(m *core.Manifest)) testPackage {
	f.t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	add := func(name string, data []byte, mode int64) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			f.t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			f.t.Fatal(err)
		}
	}
	add("run.sh", []byte(script), 0o755)
	fill := make([]byte, filler)
	_, _ = rand.Read(fill)
	add("filler.bin", fill, 0o644)
	if err := tw.Close(); err != nil {
		f.t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		f.t.Fatal(err)
	}
	var frags []string
	info, err := core.Chunk(bytes.NewReader(buf.Bytes()), core.MinFragmentSize, func(c cid.Cid, data []byte) error {
		frags = append(frags, c.String())
		return f.store.Put(c, data)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	m := &core.Manifest{Schema: core.ManifestSchema, Name: "test-pkg", Version: "1.0", OS: "any", Arch: "any",
		Action: core.ActionLaunch, Command: []string{"/bin/sh", "run.sh"}, Size: info.Size, Digest: info.Digest,
		FragmentSize: core.MinFragmentSize, Fragments: frags}
	if mut != nil {
		mut(m)
	}
	id, data, err := m.ID()
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.store.Put(id, data); err != nil {
		f.t.Fatal(err)
	}
	return testPackage{id: id.String(), frags: frags}
}

// order returns a valid deploy order of pkg for node, with the next
// sequence number; mut may change it before it is signed.
func (f *fakeCoord) order(id, node string, pkg testPackage, mut func(o *core.Order)) *core.Order {
	f.mu.Lock()
	f.seq++
	seq := f.seq
	f.mu.Unlock()
	now := time.Now().UTC().Truncate(time.Second)
	o := &core.Order{Schema: core.OrderSchema, Kind: core.KindDeploy, ID: id, Seq: seq,
		IssuedAt: now, NotBefore: now.Add(-time.Minute), Expires: now.Add(time.Hour),
		Packages: []string{pkg.id}, Targets: []string{node}, Priority: 5,
		Mode: core.ModeOneByOne, Reboot: core.RebootNever}
	if mut != nil {
		mut(o)
	}
	return o
}

func (f *fakeCoord) sign(o *core.Order) *core.Envelope {
	f.t.Helper()
	e, err := core.SignOrder(o, f.key)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// publish makes a signed order available to sync.
func (f *fakeCoord) publish(e *core.Envelope) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orders = append(f.orders, e)
}

// push sends orders to a node the way the coordinator does, over the
// connection the node's first sync opened (a dial of our own could cross
// the node's and make the test depend on libp2p's simultaneous-open luck).
func (f *fakeCoord) push(ctx context.Context, n *Node, envs ...*core.Envelope) (int, error) {
	h := f.host()
	h.Peerstore().AddAddrs(n.ID(), n.Addrs(), peerstore.PermanentAddrTTL)
	eventually(f.t, 30*time.Second, "node connected to the coordinator", func() bool {
		return h.Network().Connectedness(n.ID()) == network.Connected
	})
	ack, err := p2p.Call[core.OrdersPush, core.OrdersAck](ctx, h, n.ID(), core.ProtoOrders, &core.OrdersPush{Orders: envs}, 1<<20)
	if err != nil {
		return 0, err
	}
	return ack.Accepted, nil
}
