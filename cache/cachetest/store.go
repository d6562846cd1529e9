package cachetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
)

// OpenStore returns an empty store with the given quota (0 = unlimited)
// and arranges for it to be closed when t ends.
type OpenStore func(t *testing.T, quota int64) cache.Store

// frag is the fragment size the quota tests use.
const frag = 4 << 10

// RunStoreTests runs the Store conformance suite against open.
func RunStoreTests(t *testing.T, open OpenStore) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, open OpenStore)
	}{
		{"RoundTrip", testRoundTrip},
		{"PutExistingIsNoop", testPutExisting},
		{"Missing", testMissing},
		{"TamperedRejected", testTampered},
		{"BadCIDRejected", testBadCID},
		{"List", testList},
		{"EvictsLRU", testEvictsLRU},
		{"PinnedNeverEvicted", testPinnedNeverEvicted},
		{"UnpinMakesEvictable", testUnpinMakesEvictable},
		{"PinnedByAnyOwner", testPinnedByAnyOwner},
		{"PinBeforeArrival", testPinBeforeArrival},
		{"LargerThanQuota", testLargerThanQuota},
		{"PinArguments", testPinArguments},
		{"Concurrent", testConcurrent},
		{"ConcurrentEviction", testConcurrentEviction},
		{"Closed", testClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, open)
		})
	}
}

func testRoundTrip(t *testing.T, open OpenStore) {
	s := open(t, 0)
	c, data := fragment(1, 100_000)
	mustHave(t, s, c, false)
	mustPut(t, s, c, data)
	mustHave(t, s, c, true)
	mustUsage(t, s, int64(len(data)))

	got, err := s.Get(c)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %d bytes, %v; want the %d bytes put", len(got), err, len(data))
	}
	got[0] ^= 0xff // the caller owns the copy
	if again, _ := s.Get(c); !bytes.Equal(again, data) {
		t.Fatal("modifying Get's result changed the stored fragment")
	}

	rc, n, err := s.Open(c)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	streamed, err := io.ReadAll(rc)
	if cerr := rc.Close(); err != nil || cerr != nil {
		t.Fatalf("read opened fragment: %v, close: %v", err, cerr)
	}
	if n != int64(len(data)) || !bytes.Equal(streamed, data) {
		t.Fatalf("Open = %d bytes (size %d), want %d", len(streamed), n, len(data))
	}

	if err := s.Delete(c); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	mustHave(t, s, c, false)
	mustUsage(t, s, 0)
	_, err = s.Get(c)
	wantErr(t, "Get after Delete", err, cache.ErrNotFound)
}

func testPutExisting(t *testing.T, open OpenStore) {
	s := open(t, 0)
	c, data := fragment(2, frag)
	mustPut(t, s, c, data)
	mustPut(t, s, c, data)
	mustUsage(t, s, frag)
}

func testMissing(t *testing.T, open OpenStore) {
	s := open(t, 0)
	c, _ := fragment(3, frag)
	_, err := s.Get(c)
	wantErr(t, "Get", err, cache.ErrNotFound)
	_, _, err = s.Open(c)
	wantErr(t, "Open", err, cache.ErrNotFound)
	if err := s.Delete(c); err != nil {
		t.Fatalf("Delete of an absent fragment: %v", err)
	}
}

func testTampered(t *testing.T, open OpenStore) {
	s := open(t, 0)
	c, data := fragment(4, frag)
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 1
	for name, b := range map[string][]byte{"flipped bit": bad, "truncated": data[:frag-1], "empty": nil} {
		err := s.Put(c, b)
		wantErr(t, "Put of "+name+" bytes", err, core.ErrDigestMismatch)
	}
	mustHave(t, s, c, false)
	mustUsage(t, s, 0)
}

func testBadCID(t *testing.T, open OpenStore) {
	s := open(t, 0)
	data := []byte("relaymesh fragment")
	sum := func(code uint64) mh.Multihash {
		h, err := mh.Sum(data, code, -1)
		if err != nil {
			t.Fatalf("multihash %d: %v", code, err)
		}
		return h
	}
	bad := map[string]cid.Cid{
		"identity multihash": cid.NewCidV1(cid.Raw, sum(mh.IDENTITY)),
		"CIDv0":              cid.NewCidV0(sum(mh.SHA2_256)),
		"sha2-512":           cid.NewCidV1(cid.Raw, sum(mh.SHA2_512)),
		"dag-pb codec":       cid.NewCidV1(cid.DagProtobuf, sum(mh.SHA2_256)),
		"undefined":          cid.Undef,
	}
	for name, c := range bad {
		wantErr(t, name+": Put", s.Put(c, data), core.ErrBadCID)
		_, err := s.Get(c)
		wantErr(t, name+": Get", err, core.ErrBadCID)
		_, err = s.Has(c)
		wantErr(t, name+": Has", err, core.ErrBadCID)
		_, _, err = s.Open(c)
		wantErr(t, name+": Open", err, core.ErrBadCID)
		wantErr(t, name+": Delete", s.Delete(c), core.ErrBadCID)
		wantErr(t, name+": Pin", s.Pin("order-1", c), core.ErrBadCID)
	}
	mustUsage(t, s, 0)
}

func testList(t *testing.T, open OpenStore) {
	s := open(t, 0)
	want := map[cid.Cid]int64{}
	for i := range 5 {
		c, data := fragment(uint64(100+i), frag+i)
		mustPut(t, s, c, data)
		want[c] = int64(len(data))
	}
	got := map[cid.Cid]int64{}
	err := s.List(func(c cid.Cid, size int64) error { got[c] = size; return nil })
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	calls := 0
	err = s.List(func(cid.Cid, int64) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("List with failing fn: %v after %d calls, want %v after 1", err, calls, stop)
	}
}

// frags returns n fragments of size frag.
func frags(seed uint64, n int) ([]cid.Cid, [][]byte) {
	cids, datas := make([]cid.Cid, n), make([][]byte, n)
	for i := range n {
		cids[i], datas[i] = fragment(seed+uint64(i), frag)
	}
	return cids, datas
}

func testEvictsLRU(t *testing.T, open OpenStore) {
	s := open(t, 3*frag)
	c, d := frags(200, 5)
	a, b, cc, dd, e := 0, 1, 2, 3, 4
	for _, i := range []int{a, b, cc} {
		mustPut(t, s, c[i], d[i])
	}
	if _, err := s.Get(c[a]); err != nil { // order now b, c, a
		t.Fatal(err)
	}
	mustPut(t, s, c[dd], d[dd]) // evicts b -> c, a, d
	mustHave(t, s, c[b], false)
	mustHave(t, s, c[a], true)
	rc, _, err := s.Open(c[cc]) // -> a, d, c
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	mustPut(t, s, c[a], d[a]) // a re-put counts as use -> d, c, a
	mustPut(t, s, c[e], d[e]) // evicts d -> c, a, e
	mustHave(t, s, c[dd], false)
	for _, i := range []int{a, cc, e} {
		mustHave(t, s, c[i], true)
	}
	used, quota := s.Usage()
	if used != 3*frag || quota != 3*frag {
		t.Fatalf("Usage = %d/%d, want %d/%d", used, quota, 3*frag, 3*frag)
	}
}

func testPinnedNeverEvicted(t *testing.T, open OpenStore) {
	s := open(t, 2*frag)
	c, d := frags(300, 4)
	mustPut(t, s, c[0], d[0])
	mustPut(t, s, c[1], d[1])
	if err := s.Pin("order-1", c[0]); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, c[2], d[2]) // c0 is the LRU but pinned: c1 goes
	mustPut(t, s, c[3], d[3]) // then c2
	mustHave(t, s, c[0], true)
	mustHave(t, s, c[1], false)
	mustHave(t, s, c[2], false)
	mustHave(t, s, c[3], true)
	mustUsage(t, s, 2*frag)
}

func testUnpinMakesEvictable(t *testing.T, open OpenStore) {
	s := open(t, 2*frag)
	c, d := frags(400, 3)
	if err := s.Pin("order-1", c[0], c[1]); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, c[0], d[0])
	mustPut(t, s, c[1], d[1])
	wantErr(t, "Put over a quota full of pinned data", s.Put(c[2], d[2]), cache.ErrQuotaExceeded)
	mustHave(t, s, c[2], false)
	mustHave(t, s, c[0], true)
	mustHave(t, s, c[1], true)
	mustUsage(t, s, 2*frag)

	if err := s.Unpin("order-1"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, c[2], d[2])
	mustHave(t, s, c[0], false)
	mustHave(t, s, c[1], true)
	mustHave(t, s, c[2], true)
	if err := s.Unpin("never-pinned"); err != nil {
		t.Fatalf("Unpin of an unknown owner: %v", err)
	}
}

func testPinnedByAnyOwner(t *testing.T, open OpenStore) {
	s := open(t, frag)
	c, d := frags(500, 2)
	mustPut(t, s, c[0], d[0])
	if err := s.Pin("order-1", c[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Pin("order-2", c[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpin("order-1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Put while order-2 still pins", s.Put(c[1], d[1]), cache.ErrQuotaExceeded)
	if err := s.Unpin("order-2"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, c[1], d[1])
	mustHave(t, s, c[0], false)
}

func testPinBeforeArrival(t *testing.T, open OpenStore) {
	s := open(t, frag)
	c, d := frags(600, 2)
	if err := s.Pin("order-1", c[0]); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, c[0], d[0])
	wantErr(t, "Put", s.Put(c[1], d[1]), cache.ErrQuotaExceeded)
	mustHave(t, s, c[0], true)
}

func testLargerThanQuota(t *testing.T, open OpenStore) {
	s := open(t, frag)
	c, d := frags(700, 1)
	mustPut(t, s, c[0], d[0])
	big, data := fragment(701, frag+1)
	wantErr(t, "Put bigger than the quota", s.Put(big, data), cache.ErrQuotaExceeded)
	mustHave(t, s, big, false)
	mustHave(t, s, c[0], true) // nothing evicted for a Put that failed
}

func testPinArguments(t *testing.T, open OpenStore) {
	s := open(t, 0)
	c, _ := fragment(800, frag)
	wantErr(t, "Pin with empty owner", s.Pin("", c), cache.ErrBadOwner)
	wantErr(t, "Unpin with empty owner", s.Unpin(""), cache.ErrBadOwner)
	if err := s.Pin("order-1"); err != nil {
		t.Fatalf("Pin of no CIDs: %v", err)
	}
}

func testConcurrent(t *testing.T, open OpenStore) {
	s := open(t, 0)
	const workers, each = 8, 16
	c, d := frags(900, workers*each)
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*3)
	for w := range workers {
		wg.Go(func() {
			for i := w * each; i < (w+1)*each; i++ {
				errs <- s.Put(c[i], d[i])
				// read a neighbour's fragment: present or not yet
				j := (i + each) % len(c)
				if got, err := s.Get(c[j]); err == nil && !bytes.Equal(got, d[j]) {
					errs <- fmt.Errorf("Get(%s) returned wrong bytes", c[j])
				} else if err != nil && !errors.Is(err, cache.ErrNotFound) {
					errs <- err
				}
				if _, err := s.Has(c[j]); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	mustUsage(t, s, workers*each*frag)
}

func testConcurrentEviction(t *testing.T, open OpenStore) {
	const quota = 8 * frag
	s := open(t, quota)
	c, d := frags(1000, 64)
	if err := s.Pin("order-1", c[0], c[1]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(c)*2)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(c); i += 4 {
				errs <- s.Put(c[i], d[i])
				if _, err := s.Get(c[(i+1)%len(c)]); err != nil && !errors.Is(err, cache.ErrNotFound) {
					errs <- err
				}
			}
		})
	}
	wg.Go(func() {
		for range 16 {
			if used, _ := s.Usage(); used > quota {
				errs <- fmt.Errorf("usage %d over quota %d", used, quota)
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	mustHave(t, s, c[0], true)
	mustHave(t, s, c[1], true)
	if used, _ := s.Usage(); used > quota {
		t.Fatalf("usage %d over quota %d", used, quota)
	}
}

func testClosed(t *testing.T, open OpenStore) {
	s := open(t, 0)
	c, d := fragment(1100, frag)
	mustPut(t, s, c, d)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err := s.Get(c)
	wantErr(t, "Get after Close", err, cache.ErrClosed)
	wantErr(t, "Put after Close", s.Put(c, d), cache.ErrClosed)
}
