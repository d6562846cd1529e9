package p2p

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// handlerTimeout bounds one request/response exchange on the serving side:
// reading the request, running the handler and writing the answer.
const handlerTimeout = 30 * time.Second

// envelope is the response frame of Handle: either OK with a body, or an
// error message the client returns as *RemoteError.
type envelope struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Body  json.RawMessage `json:"body,omitempty"`
}

// Handle serves proto on h: per stream it reads one Req of at most maxReq
// bytes, calls fn with the authenticated remote peer, writes the Resp or
// fn's error (as a message the client gets as *RemoteError) and closes.
// fn runs under a context that ends after handlerTimeout. A request that
// is too large or malformed is answered with an error frame too.
func Handle[Req, Resp any](h host.Host, proto protocol.ID, maxReq int,
	fn func(ctx context.Context, from peer.ID, req *Req) (*Resp, error),
) {
	HandleAdmitted(h, proto, maxReq, nil, fn)
}

// HandleAdmitted is Handle for peers admit accepts: the stream of any
// other peer is reset before a byte of it is read, so an unauthenticated
// peer costs a stream header and no buffer. A nil admit accepts everyone.
func HandleAdmitted[Req, Resp any](h host.Host, proto protocol.ID, maxReq int,
	admit func(peer.ID) bool,
	fn func(ctx context.Context, from peer.ID, req *Req) (*Resp, error),
) {
	h.SetStreamHandler(proto, func(s network.Stream) {
		if admit != nil && !admit(s.Conn().RemotePeer()) {
			_ = s.Reset()
			return
		}
		defer func() { _ = s.Close() }()
		_ = s.SetDeadline(time.Now().Add(handlerTimeout))
		ctx, cancel := context.WithTimeout(context.Background(), handlerTimeout)
		defer cancel()

		var req Req
		if err := ReadMsg(s, maxReq, &req); err != nil {
			_ = WriteMsg(s, envelope{Error: "bad request: " + err.Error()})
			return
		}
		resp, err := callHandler(ctx, fn, s.Conn().RemotePeer(), &req)
		if err != nil {
			_ = WriteMsg(s, envelope{Error: err.Error()})
			return
		}
		body, err := json.Marshal(resp)
		if err != nil {
			_ = WriteMsg(s, envelope{Error: "encode response: " + err.Error()})
			return
		}
		_ = WriteMsg(s, envelope{OK: true, Body: body})
	})
}

// callHandler runs fn and turns a panic into an error, so one bad request
// cannot take the process down.
func callHandler[Req, Resp any](ctx context.Context,
	fn func(context.Context, peer.ID, *Req) (*Resp, error), from peer.ID, req *Req,
) (resp *Resp, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, errors.New("handler panicked")
		}
	}()
	return fn(ctx, from, req)
}

// Call opens a stream to p for proto, sends req, and reads the response of
// at most maxResp bytes. A failure the remote handler reported comes back
// as *RemoteError. ctx bounds the whole exchange.
func Call[Req, Resp any](ctx context.Context, h host.Host, p peer.ID, proto protocol.ID,
	req *Req, maxResp int,
) (*Resp, error) {
	s, err := openStream(ctx, h, p, proto)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()

	if err := WriteMsg(s, req); err != nil {
		_ = s.Reset()
		return nil, ctxErr(ctx, fmt.Errorf("p2p: call %s on %s: %w", proto, p, err))
	}
	_ = s.CloseWrite()
	var env envelope
	if err := ReadMsg(s, maxResp, &env); err != nil {
		_ = s.Reset()
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: stream closed without a response", ErrBadMsg)
		}
		return nil, ctxErr(ctx, fmt.Errorf("p2p: call %s on %s: %w", proto, p, err))
	}
	_ = s.Close()
	if !env.OK {
		return nil, &RemoteError{Msg: env.Error}
	}
	var resp Resp
	if err := decodeStrict(env.Body, &resp); err != nil {
		return nil, fmt.Errorf("p2p: call %s on %s: response body: %w", proto, p, err)
	}
	return &resp, nil
}

// openStream opens a stream and applies ctx's deadline to it.
// openStream opens a stream of the first of protos that p supports.
func openStream(ctx context.Context, h host.Host, p peer.ID, protos ...protocol.ID) (network.Stream, error) {
	s, err := h.NewStream(ctx, p, protos...)
	if err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("p2p: open %s stream to %s: %w", protos[0], p, err))
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	return s, nil
}

// ctxErr prefers ctx's error when ctx ended: a reset caused by our own
// cancellation should read as the cancellation.
func ctxErr(ctx context.Context, err error) error {
	if ce := ctx.Err(); ce != nil && !errors.Is(err, ce) {
		return fmt.Errorf("%w (%w)", ce, err)
	}
	return err
}
