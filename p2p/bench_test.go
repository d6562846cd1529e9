package p2p

import (
	"testing"

	"github.com/relaymesh/relaymesh/core"
)

func BenchmarkFetchFragment1MiB(b *testing.B) {
	data := randomBytes(b, 1<<20)
	c := core.FragmentCID(data)
	server, client := newTestHost(b, nil), newTestHost(b, nil)
	if err := ServeFragments(server, FragmentServerConfig{Source: newMemSource(data)}); err != nil {
		b.Fatal(err)
	}
	connect(b, client, server)
	ctx := b.Context()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FetchFragment(ctx, client, server.ID(), c, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}
