package cli

import (
	"os"
	"testing"

	"github.com/ipfs/go-cid"
)

// tamperFragment flips one byte of fragment c in the package store in dir,
// behind the store's back (its Put verifies, so tampering goes under it).
func tamperFragment(t *testing.T, dir string, c cid.Cid) {
	t.Helper()
	st, err := openStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := st.path(c)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("tamper with %s: %v", c, err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
