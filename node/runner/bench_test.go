package runner

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
)

// BenchmarkUnpack32MiB: a 32 MiB tar.gz (incompressible, 1 MiB fragments,
// as bench-netns deploys) from the fragments into a directory, reassembled
// into a file first (file, the path zips and store packages take) against
// streamed into the extractor (stream, launch and execute tar.gz).
func BenchmarkUnpack32MiB(b *testing.B) {
	const fragSize = 1 << 20
	archive := tarGz(b, file{name: "payload.bin", body: noise(32 << 20)})
	frags := &memFrags{m: map[cid.Cid][]byte{}}
	info, err := core.Chunk(bytes.NewReader(archive), fragSize, func(c cid.Cid, data []byte) error {
		frags.put(c, bytes.Clone(data))
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	m := &core.Manifest{Schema: core.ManifestSchema, Name: "bench", Version: "1", OS: "linux", Arch: "any",
		Action: core.ActionLaunch, Command: []string{"true"}, Size: info.Size, Digest: info.Digest, FragmentSize: fragSize}
	for _, c := range info.Fragments {
		m.Fragments = append(m.Fragments, c.String())
	}
	base := b.TempDir()
	cfg := Config{TempDir: base, Logger: slog.New(slog.DiscardHandler)}
	plain, err := New(cfg, frags, &memInstalled{m: map[string]string{}})
	if err != nil {
		b.Fatal(err)
	}
	// A store that hands out fragments it hashed when they came in, as
	// the node's badger store does: reassembly does not hash them again.
	vf := verifiedFrags{}
	for c, data := range frags.m {
		if vf[c], err = core.Verify(c, data); err != nil {
			b.Fatal(err)
		}
	}
	vouched, err := New(cfg, vf, &memInstalled{m: map[string]string{}})
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []struct {
		name   string
		r      *Runner
		stream bool
	}{{"file", plain, false}, {"stream", plain, true}, {"stream-verified", vouched, true}} {
		r := mode.r
		b.Run(mode.name, func(b *testing.B) {
			b.SetBytes(m.Size)
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			n := 0
			for ; b.Loop(); n++ {
				tmp, err := os.MkdirTemp(base, "run-*")
				if err != nil {
					b.Fatal(err)
				}
				if err := r.unpack(context.Background(), m, tmp, filepath.Join(tmp, "pkg"), mode.stream); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := os.RemoveAll(tmp); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			// CPU time (user+sys, this process) per op: steadier than wall
			// time on a shared machine; includes the untimed RemoveAll.
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(max(n, 1)), "cpu-ns/op")
		})
	}
}

func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// verifiedFrags is a VerifiedFragments over fragments hashed beforehand.
type verifiedFrags map[cid.Cid]core.Verified

func (v verifiedFrags) Get(c cid.Cid) ([]byte, error) {
	f, err := v.GetVerified(c)
	return bytes.Clone(f.Bytes()), err
}

func (v verifiedFrags) GetVerified(c cid.Cid) (core.Verified, error) {
	f, ok := v[c]
	if !ok {
		return core.Verified{}, fmt.Errorf("no fragment %s", c)
	}
	return f, nil
}
