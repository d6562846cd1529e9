// Package cachetest is the conformance suite every cache.Store and cache.KV
// implementation must pass.
package cachetest

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
)

// fragment returns size deterministic bytes derived from seed, and their CID.
func fragment(seed uint64, size int) (cid.Cid, []byte) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	data := make([]byte, size)
	for i := 0; i+8 <= size; i += 8 {
		binary.LittleEndian.PutUint64(data[i:], r.Uint64())
	}
	return core.FragmentCID(data), data
}

func mustPut(t *testing.T, s cache.Store, c cid.Cid, data []byte) {
	t.Helper()
	if err := s.Put(c, data); err != nil {
		t.Fatalf("Put(%s): %v", c, err)
	}
}

func mustHave(t *testing.T, s cache.Store, c cid.Cid, want bool) {
	t.Helper()
	got, err := s.Has(c)
	if err != nil {
		t.Fatalf("Has(%s): %v", c, err)
	}
	if got != want {
		t.Fatalf("Has(%s) = %v, want %v", c, got, want)
	}
}

func mustUsage(t *testing.T, s cache.Store, want int64) {
	t.Helper()
	if used, _ := s.Usage(); used != want {
		t.Fatalf("Usage() used = %d, want %d", used, want)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}
