package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// A frame that announces 32 MiB and delivers 100 bytes must not cost
// 32 MiB: the buffer grows with what arrives.
func TestReadMsgAllocatesWhatArrives(t *testing.T) {
	const announced = 32 << 20
	hdr := binary.AppendUvarint(nil, announced)
	in := io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(bytes.Repeat([]byte{'x'}, 100)))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var v struct{}
	err := ReadMsg(in, announced, &v)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrBadMsg) {
		t.Fatalf("ReadMsg of a cut frame: err = %v, want ErrBadMsg", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("ReadMsg allocated %d bytes for a frame of which 100 arrived (announced %d)", got, announced)
	}
}

// Bodies of every size up to a few chunks read back intact.
func TestReadMsgGrowingSizes(t *testing.T) {
	for _, n := range []int{1, readChunk - 1, readChunk, readChunk + 1, 5*readChunk + 7} {
		body, err := readGrowing(bytes.NewReader(bytes.Repeat([]byte{'a'}, n+3)), n)
		if err != nil || len(body) != n {
			t.Fatalf("readGrowing(%d): %d bytes, err %v", n, len(body), err)
		}
	}
	if _, err := readGrowing(bytes.NewReader(make([]byte, 10)), 11); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("readGrowing of a short stream: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

// A handler guarded by admit resets a stranger's stream before reading
// it; an admitted peer is served.
func TestHandleAdmittedResetsUnread(t *testing.T) {
	t.Parallel()
	srv := newTestHost(t, nil)
	friend, stranger := newTestHost(t, nil), newTestHost(t, nil)
	var called atomic.Int64
	const proto = protocol.ID("/test/admitted/1")
	HandleAdmitted(srv, proto, 1<<10, func(p peer.ID) bool { return p == friend.ID() },
		func(_ context.Context, _ peer.ID, req *string) (*string, error) { called.Add(1); return req, nil })
	connect(t, friend, srv)
	connect(t, stranger, srv)
	ctx := testCtx(t)
	msg := "hi"
	if got, err := Call[string, string](ctx, friend, srv.ID(), proto, &msg, 1<<10); err != nil || *got != msg {
		t.Fatalf("admitted call: %v, %v", got, err)
	}
	_, err := Call[string, string](ctx, stranger, srv.ID(), proto, &msg, 1<<10)
	if err == nil || !errors.Is(err, network.ErrReset) {
		t.Fatalf("stranger's call: err = %v, want a stream reset", err)
	}
	if called.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1 (the admitted peer only)", called.Load())
	}
}

// With Enrolled set, a stranger gets StrangerStreams streams at a time,
// an enrolled peer many more, and a promoted stranger the enrolled limits.
func TestStrangerStreamLimit(t *testing.T) {
	t.Parallel()
	var friendID, promotedID atomic.Value
	friendID.Store(peer.ID(""))
	promotedID.Store(peer.ID(""))
	srv := newTestHost(t, func(c *HostConfig) {
		c.Enrolled = func(p peer.ID) bool { return p == friendID.Load() || p == promotedID.Load() }
	})
	const proto = protocol.ID("/test/hold/1")
	release := make(chan struct{})
	srv.SetStreamHandler(proto, func(s network.Stream) {
		_, _ = s.Write([]byte{1}) // the stream is held: tell the client
		<-release
		_ = s.Reset()
	})
	t.Cleanup(func() { close(release) })
	friend, stranger := newTestHost(t, nil), newTestHost(t, nil)
	friendID.Store(friend.ID())
	connect(t, friend, srv)
	connect(t, stranger, srv)

	open := func(h interface {
		NewStream(context.Context, peer.ID, ...protocol.ID) (network.Stream, error)
	}, n int) int {
		ok := 0
		for range n {
			s, err := h.NewStream(testCtx(t), srv.ID(), proto)
			if err != nil {
				continue
			}
			// The server accounts the stream when its header arrives;
			// a refusal shows as a reset, a held stream as the byte its
			// handler writes.
			_, _ = s.Write([]byte{1})
			if _, err := s.Read(make([]byte, 1)); err == nil {
				ok++
			}
		}
		return ok
	}
	if got := open(stranger, StrangerStreams*4); got > StrangerStreams {
		t.Fatalf("stranger holds %d streams, limit %d", got, StrangerStreams)
	}
	if got := open(friend, StrangerStreams*4); got != StrangerStreams*4 {
		t.Fatalf("enrolled peer holds %d of %d streams", got, StrangerStreams*4)
	}
	promotedID.Store(stranger.ID())
	Promote(srv, stranger.ID())
	if got := open(stranger, StrangerStreams*2); got != StrangerStreams*2 {
		t.Fatalf("promoted peer holds %d more of %d streams", got, StrangerStreams*2)
	}
}
