package cache

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
)

const mib = 1 << 20

// randomFragment fills buf with bytes derived from seed and returns their CID.
func randomFragment(buf []byte, seed uint64) cid.Cid {
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i+8 <= len(buf); i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], r.Uint64())
	}
	return core.FragmentCID(buf)
}

// BenchmarkBadgerPut1MiB measures Put (hash + write) of new 1 MiB fragments.
func BenchmarkBadgerPut1MiB(b *testing.B) {
	s := openTestBadger(b, Config{Dir: b.TempDir()})
	buf := make([]byte, mib)
	b.SetBytes(mib)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		c := randomFragment(buf, uint64(i))
		b.StartTimer()
		if err := s.Put(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBadgerGet1MiB measures Get (read + re-hash) of 1 MiB fragments.
func BenchmarkBadgerGet1MiB(b *testing.B) {
	s := openTestBadger(b, Config{Dir: b.TempDir()})
	const n = 16
	cids := make([]cid.Cid, n)
	buf := make([]byte, mib)
	for i := range cids {
		cids[i] = randomFragment(buf, uint64(i))
		if err := s.Put(cids[i], buf); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(mib)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Get(cids[i%n]); err != nil {
			b.Fatal(err)
		}
	}
}

// idleHeapMiB stores n 1 MiB fragments in a badger cache, closes and
// reopens it, and returns the Go heap in use (MiB) with the reopened cache
// idle. The cache is closed when tb ends.
func idleHeapMiB(tb testing.TB, n int) float64 {
	tb.Helper()
	cfg := DefaultConfig(tb.TempDir())
	s := openTestBadger(tb, cfg)
	buf := make([]byte, mib)
	for i := range n {
		c := randomFragment(buf, uint64(i))
		if err := s.Put(c, buf); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	buf = nil
	s = openTestBadger(tb, cfg)
	if used, _ := s.Usage(); used != int64(n)*mib {
		tb.Fatalf("usage after reopen = %d, want %d", used, n*mib)
	}
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	runtime.KeepAlive(s)
	return float64(ms.HeapInuse) / mib
}

// BenchmarkIdleHeap reports the heap of an idle cache holding 256 MiB.
func BenchmarkIdleHeap(b *testing.B) {
	heap := idleHeapMiB(b, 256)
	for b.Loop() {
	}
	b.ReportMetric(heap, "heap-MiB")
}

// The heap budget of an idle node cache is 40 MiB.
func TestIdleHeapBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 32 MiB")
	}
	if heap := idleHeapMiB(t, 32); heap > 40 {
		t.Fatalf("idle heap %.1f MiB, budget 40 MiB", heap)
	} else {
		t.Logf("idle heap %.1f MiB", heap)
	}
}

// BenchmarkBadgerPutVerified1MiB is Put of fragments a fetch hashed
// already (core.Verify): the write and the hot-set copy, no second hash.
func BenchmarkBadgerPutVerified1MiB(b *testing.B) {
	s := openTestBadger(b, DefaultConfig(b.TempDir()))
	buf := make([]byte, mib)
	b.SetBytes(mib)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		c := randomFragment(buf, uint64(i))
		v, err := core.Verify(c, buf)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := s.PutVerified(v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBadgerServeHot1MiB is a relay serving the fragment it stored
// last to member after member: Open from the hot set, no disk read and no
// hash. Compare BenchmarkBadgerGet1MiB (HotBytes 0: read and hash).
func BenchmarkBadgerServeHot1MiB(b *testing.B) {
	s := openTestBadger(b, DefaultConfig(b.TempDir()))
	buf := make([]byte, mib)
	c := randomFragment(buf, 1)
	if err := s.Put(c, buf); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(mib)
	b.ReportAllocs()
	for b.Loop() {
		rc, _, err := s.Open(c)
		if err != nil {
			b.Fatal(err)
		}
		_ = rc.Close()
	}
}
