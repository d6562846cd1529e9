package p2p

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

const echoProto protocol.ID = "/relaymesh/test/echo/1.0.0"

type echoReq struct {
	Text string `json:"text"`
}

type echoResp struct {
	Text string  `json:"text"`
	From peer.ID `json:"from,omitempty"`
}

func serveEcho(t *testing.T) (server, client interface{ ID() peer.ID }, call func(ctx context.Context, req *echoReq, max int) (*echoResp, error)) {
	t.Helper()
	s, c := newTestHost(t, nil), newTestHost(t, nil)
	Handle(s, echoProto, 64, func(_ context.Context, from peer.ID, req *echoReq) (*echoResp, error) {
		switch req.Text {
		case "fail":
			return nil, errors.New("no such order 7")
		case "panic":
			panic("handler bug")
		}
		return &echoResp{Text: strings.ToUpper(req.Text), From: from}, nil
	})
	connect(t, c, s)
	return s, c, func(ctx context.Context, req *echoReq, max int) (*echoResp, error) {
		return Call[echoReq, echoResp](ctx, c, s.ID(), echoProto, req, max)
	}
}

func TestCallRoundTrip(t *testing.T) {
	t.Parallel()
	_, client, call := serveEcho(t)
	resp, err := call(testCtx(t), &echoReq{Text: "hello"}, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Text != "HELLO" || resp.From != client.ID() {
		t.Fatalf("resp %+v: want HELLO from %s", resp, client.ID())
	}
}

func TestCallRemoteErrors(t *testing.T) {
	t.Parallel()
	_, _, call := serveEcho(t)
	tests := []struct {
		name string
		req  echoReq
		want string
	}{
		{"handler error", echoReq{Text: "fail"}, "no such order 7"},
		{"handler panic", echoReq{Text: "panic"}, "handler panicked"},
		{"oversize request", echoReq{Text: strings.Repeat("x", 100)}, "bytes, limit 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := call(testCtx(t), &tt.req, 1024)
			var re *RemoteError
			if !errors.As(err, &re) || !strings.Contains(re.Msg, tt.want) {
				t.Fatalf("Call = %v, want *RemoteError containing %q", err, tt.want)
			}
		})
	}
}

func TestCallResponseTooLarge(t *testing.T) {
	t.Parallel()
	_, _, call := serveEcho(t)
	_, err := call(testCtx(t), &echoReq{Text: strings.Repeat("y", 40)}, 16)
	if !errors.Is(err, ErrMsgTooLarge) {
		t.Fatalf("Call = %v, want ErrMsgTooLarge", err)
	}
}

func TestCallContextCancelled(t *testing.T) {
	t.Parallel()
	s, c := newTestHost(t, nil), newTestHost(t, nil)
	entered := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	Handle(s, echoProto, 64, func(ctx context.Context, _ peer.ID, _ *echoReq) (*echoResp, error) {
		close(entered)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &echoResp{}, nil
	})
	connect(t, c, s)
	ctx, cancel := context.WithCancel(testCtx(t))
	go func() {
		<-entered
		cancel()
	}()
	_, err := Call[echoReq, echoResp](ctx, c, s.ID(), echoProto, &echoReq{Text: "slow"}, 1024)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Call = %v, want context.Canceled", err)
	}
}

// TestManyConcurrentStreams holds n streams open at once between two hosts,
// which the resource manager limits must allow.
func TestManyConcurrentStreams(t *testing.T) {
	t.Parallel()
	const n = 1000
	s, c := newTestHost(t, nil), newTestHost(t, nil)
	var inside atomic.Int32
	all := make(chan struct{})
	Handle(s, echoProto, 64, func(ctx context.Context, _ peer.ID, req *echoReq) (*echoResp, error) {
		if inside.Add(1) == n {
			close(all)
		}
		select {
		case <-all:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &echoResp{Text: req.Text}, nil
	})
	connect(t, c, s)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			want := fmt.Sprint(i)
			resp, err := Call[echoReq, echoResp](ctx, c, s.ID(), echoProto, &echoReq{Text: want}, 1024)
			if err == nil && resp.Text != want {
				err = fmt.Errorf("got %q, want %q", resp.Text, want)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("%d streams at once: %v", n, err)
	}
}
