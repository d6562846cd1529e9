package cachetest

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/relaymesh/relaymesh/cache"
)

// OpenKV returns an empty KV whose owner is closed when t ends.
type OpenKV func(t *testing.T) cache.KV

// RunKVTests runs the KV conformance suite against open.
func RunKVTests(t *testing.T, open OpenKV) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, kv cache.KV)
	}{
		{"RoundTrip", testKVRoundTrip},
		{"ValuesAreCopied", testKVCopies},
		{"EmptyKey", testKVEmptyKey},
		{"ScanOrderAndPrefix", testKVScan},
		{"ScanStopsOnError", testKVScanStops},
		{"ScanMayWrite", testKVScanMayWrite},
		{"UpdateAtomic", testKVUpdateAtomic},
		{"UpdateSeesOwnWrites", testKVUpdateOwnWrites},
		{"ConcurrentUpdates", testKVConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, open(t))
		})
	}
}

func kvGet(t *testing.T, kv cache.KV, key string) []byte {
	t.Helper()
	v, err := kv.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v
}

func kvSet(t *testing.T, kv cache.KV, key, val string) {
	t.Helper()
	if err := kv.Set(key, []byte(val)); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func testKVRoundTrip(t *testing.T, kv cache.KV) {
	_, err := kv.Get("trust/seq")
	wantErr(t, "Get of absent key", err, cache.ErrNotFound)
	kvSet(t, kv, "trust/seq", "1")
	kvSet(t, kv, "trust/seq", "2")
	if v := kvGet(t, kv, "trust/seq"); string(v) != "2" {
		t.Fatalf("Get = %q, want %q", v, "2")
	}
	kvSet(t, kv, "empty", "")
	if v := kvGet(t, kv, "empty"); len(v) != 0 {
		t.Fatalf("Get(empty) = %q", v)
	}
	big := bytes.Repeat([]byte("x"), 64<<10) // beyond badger's inline threshold
	if err := kv.Set("big", big); err != nil {
		t.Fatal(err)
	}
	if v := kvGet(t, kv, "big"); !bytes.Equal(v, big) {
		t.Fatalf("Get(big) = %d bytes, want %d", len(v), len(big))
	}
	if err := kv.Delete("trust/seq"); err != nil {
		t.Fatal(err)
	}
	_, err = kv.Get("trust/seq")
	wantErr(t, "Get after Delete", err, cache.ErrNotFound)
	if err := kv.Delete("never-set"); err != nil {
		t.Fatalf("Delete of absent key: %v", err)
	}
}

func testKVCopies(t *testing.T, kv cache.KV) {
	val := []byte("abc")
	if err := kv.Set("k", val); err != nil {
		t.Fatal(err)
	}
	val[0] = 'X'
	got := kvGet(t, kv, "k")
	if string(got) != "abc" {
		t.Fatalf("Set kept the caller's slice: got %q", got)
	}
	got[0] = 'Y'
	if string(kvGet(t, kv, "k")) != "abc" {
		t.Fatal("Get returned the stored slice")
	}
}

func testKVEmptyKey(t *testing.T, kv cache.KV) {
	_, err := kv.Get("")
	wantErr(t, "Get", err, cache.ErrBadKey)
	wantErr(t, "Set", kv.Set("", nil), cache.ErrBadKey)
	wantErr(t, "Delete", kv.Delete(""), cache.ErrBadKey)
}

func scan(t *testing.T, kv cache.KV, prefix string) []string {
	t.Helper()
	var got []string
	err := kv.Scan(prefix, func(k string, v []byte) error {
		got = append(got, k+"="+string(v))
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%q): %v", prefix, err)
	}
	return got
}

func testKVScan(t *testing.T, kv cache.KV) {
	for _, k := range []string{"out/2", "out/10", "a", "out/1", "outbox", "out", "p/1", "out/\xff"} {
		kvSet(t, kv, k, k)
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"out/", []string{"out/1=out/1", "out/10=out/10", "out/2=out/2", "out/\xff=out/\xff"}},
		{"out", []string{"out=out", "out/1=out/1", "out/10=out/10", "out/2=out/2", "out/\xff=out/\xff", "outbox=outbox"}},
		{"none/", nil},
		{"", []string{"a=a", "out=out", "out/1=out/1", "out/10=out/10", "out/2=out/2", "out/\xff=out/\xff", "outbox=outbox", "p/1=p/1"}},
	}
	for _, tt := range tests {
		if got := scan(t, kv, tt.prefix); !slices.Equal(got, tt.want) {
			t.Errorf("Scan(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
	}
}

func testKVScanStops(t *testing.T, kv cache.KV) {
	for _, k := range []string{"q/1", "q/2", "q/3"} {
		kvSet(t, kv, k, "v")
	}
	stop := errors.New("stop")
	var seen []string
	err := kv.Scan("q/", func(k string, _ []byte) error {
		seen = append(seen, k)
		if k == "q/2" {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || !slices.Equal(seen, []string{"q/1", "q/2"}) {
		t.Fatalf("Scan = %v after %q, want %v after q/1, q/2", err, seen, stop)
	}
}

// Outbox draining: deleting what was scanned, from inside the scan.
func testKVScanMayWrite(t *testing.T, kv cache.KV) {
	for _, k := range []string{"outbox/1", "outbox/2"} {
		kvSet(t, kv, k, "report")
	}
	err := kv.Scan("outbox/", func(k string, _ []byte) error { return kv.Delete(k) })
	if err != nil {
		t.Fatalf("Scan deleting its keys: %v", err)
	}
	if got := scan(t, kv, "outbox/"); len(got) != 0 {
		t.Fatalf("left after draining: %q", got)
	}
}

func testKVUpdateAtomic(t *testing.T, kv cache.KV) {
	kvSet(t, kv, "seq", "1")
	boom := errors.New("boom")
	err := kv.Update(func(tx cache.KVTx) error {
		if err := tx.Set("seq", []byte("2")); err != nil {
			return err
		}
		if err := tx.Set("order/7", []byte("x")); err != nil {
			return err
		}
		if err := tx.Delete("seq"); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, "Update with failing fn", err, boom)
	if v := kvGet(t, kv, "seq"); string(v) != "1" {
		t.Fatalf("seq = %q after failed Update, want 1", v)
	}
	_, err = kv.Get("order/7")
	wantErr(t, "Get of key set in failed Update", err, cache.ErrNotFound)

	err = kv.Update(func(tx cache.KVTx) error {
		if err := tx.Set("seq", []byte("2")); err != nil {
			return err
		}
		return tx.Set("order/7", []byte("x"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(kvGet(t, kv, "seq")) != "2" || string(kvGet(t, kv, "order/7")) != "x" {
		t.Fatal("successful Update not fully applied")
	}
}

func testKVUpdateOwnWrites(t *testing.T, kv cache.KV) {
	kvSet(t, kv, "gone", "v")
	err := kv.Update(func(tx cache.KVTx) error {
		if err := tx.Set("a", []byte("1")); err != nil {
			return err
		}
		if v, err := tx.Get("a"); err != nil || string(v) != "1" {
			t.Errorf("tx.Get(a) = %q, %v; want the value just set", v, err)
		}
		if err := tx.Delete("gone"); err != nil {
			return err
		}
		if _, err := tx.Get("gone"); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("tx.Get(gone) after tx.Delete: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Read-modify-write counters from many goroutines: no lost update.
func testKVConcurrent(t *testing.T, kv cache.KV) {
	const workers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				errs <- kv.Update(func(tx cache.KVTx) error {
					v, err := tx.Get("counter")
					if err != nil && !errors.Is(err, cache.ErrNotFound) {
						return err
					}
					return tx.Set("counter", append(v, 'x'))
				})
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
	if n := len(kvGet(t, kv, "counter")); n != workers*each {
		t.Fatalf("counter = %d, want %d", n, workers*each)
	}
}
