package core

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
)

// benchSize is the archive both benchmarks read: Chunk (sha256 of the whole
// archive and of every fragment, on two goroutines) against one plain
// sha256 pass, the floor Chunk is measured against.
const benchSize = 64 << 20

var bench struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// benchFile writes benchSize bytes from a seeded generator to a temp file,
// once per test binary; TestMain removes it.
func benchFile(b *testing.B) string {
	b.Helper()
	bench.once.Do(func() {
		bench.dir, bench.err = os.MkdirTemp("", "relaymesh-core-bench-")
		if bench.err != nil {
			return
		}
		bench.path = filepath.Join(bench.dir, "archive.bin")
		f, err := os.Create(bench.path)
		if err != nil {
			bench.err = err
			return
		}
		var seed [32]byte
		copy(seed[:], "relaymesh core bench")
		_, err = io.CopyN(f, rand.NewChaCha8(seed), benchSize)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		bench.err = err
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.path
}

func removeBenchFile() {
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
}

func BenchmarkChunk(b *testing.B) {
	path := benchFile(b)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		info, err := Chunk(f, DefaultFragmentSize, func(cid.Cid, []byte) error { return nil })
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		if info.Size != benchSize || len(info.Fragments) != benchSize/DefaultFragmentSize {
			b.Fatalf("chunked %d bytes into %d fragments", info.Size, len(info.Fragments))
		}
	}
}

func BenchmarkSHA256File(b *testing.B) {
	path := benchFile(b)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	buf := make([]byte, DefaultFragmentSize)
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		n, err := io.CopyBuffer(h, f, buf)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		if n != benchSize {
			b.Fatalf("hashed %d bytes", n)
		}
		_ = h.Sum(nil)
	}
}
