package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"

	"github.com/relaymesh/relaymesh/core"
)

// FragmentProtocol is the protocol ID of fragment transfer.
const FragmentProtocol protocol.ID = "/relaymesh/frag/1.0.0"

const (
	// fragChunk is the largest write of fragment bytes, and the unit the
	// upload limiter is charged in.
	fragChunk = 64 << 10
	// maxFragRequest and maxFragHeader bound the two JSON frames.
	maxFragRequest = 512
	maxFragHeader  = 1024
	// fragRequestTimeout bounds reading the request.
	fragRequestTimeout = 10 * time.Second
	// fragStallTimeout bounds waiting for the limiter plus writing one
	// chunk: a transfer may be long, but it must keep moving.
	fragStallTimeout = 2 * time.Minute
)

// fragRequest asks for one fragment. A struct rather than a bare string so
// that a byte range can be added later without a new protocol ID.
type fragRequest struct {
	CID string `json:"cid"`
}

// fragHeader answers a fragRequest; when Found, Size raw bytes follow.
type fragHeader struct {
	Found bool   `json:"found"`
	Size  int64  `json:"size"`
	Error string `json:"error,omitempty"`
}

// FragmentSource opens fragments for serving. It returns an error wrapping
// ErrNotFound when it does not hold c.
type FragmentSource interface {
	OpenFragment(ctx context.Context, c cid.Cid) (io.ReadCloser, int64, error)
}

// FragmentServerConfig configures ServeFragments.
type FragmentServerConfig struct {
	// Source holds the fragments. Required.
	Source FragmentSource
	// Authorize, when set, is asked about every requesting peer; a refused
	// peer's stream is reset without an answer.
	Authorize func(peer.ID) bool
	// Limiter caps the upload rate in bytes per second, shared by all
	// uploads of the host; nil means unlimited. Its burst must be at least
	// 1 unless its limit is rate.Inf.
	Limiter *rate.Limiter
	// Meter counts fragment payload bytes sent; nil counts nothing.
	Meter *Meter
	// Shaper, when set, paces every chunk sent (the simulator's network).
	Shaper Shaper
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// Validate reports the first bad field.
func (c FragmentServerConfig) Validate() error {
	if c.Source == nil {
		return fmt.Errorf("%w: fragment server config: Source is nil", ErrBadConfig)
	}
	if c.Limiter != nil && c.Limiter.Limit() != rate.Inf && c.Limiter.Burst() < 1 {
		return fmt.Errorf("%w: fragment server config: Limiter burst %d: must be at least 1 byte",
			ErrBadConfig, c.Limiter.Burst())
	}
	return nil
}

// ServeFragments serves FragmentProtocol on h from cfg.Source until h
// closes or the caller removes the handler.
func ServeFragments(h host.Host, cfg FragmentServerConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	var wait func(context.Context, int) error
	if cfg.Limiter != nil {
		wait = cfg.Limiter.WaitN
	}
	serveFragments(h, cfg, wait)
	return nil
}

// serveFragments installs the handler with wait standing for the limiter,
// so tests can observe every charge.
func serveFragments(h host.Host, cfg FragmentServerConfig, wait func(context.Context, int) error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv := &fragServer{cfg: cfg, wait: wait, chunk: fragChunk}
	if l := cfg.Limiter; l != nil && l.Limit() != rate.Inf && l.Burst() < srv.chunk {
		srv.chunk = l.Burst() // WaitN refuses n above the burst
	}
	h.SetStreamHandler(FragmentProtocol, srv.handle)
}

type fragServer struct {
	cfg   FragmentServerConfig
	wait  func(ctx context.Context, n int) error // nil: unlimited
	chunk int
}

func (f *fragServer) handle(s network.Stream) {
	from := s.Conn().RemotePeer()
	log := f.cfg.Logger.With("peer", from)
	if f.cfg.Authorize != nil && !f.cfg.Authorize(from) {
		log.Debug("fragment request refused: peer not authorized")
		_ = s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Now().Add(fragRequestTimeout))
	var req fragRequest
	if err := ReadMsg(s, maxFragRequest, &req); err != nil {
		log.Debug("bad fragment request", "err", err)
		_ = s.Reset()
		return
	}
	c, err := core.ParseCID(req.CID)
	if err != nil {
		f.answer(s, log, fragHeader{Error: err.Error()})
		return
	}
	log = log.With("cid", c)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, size, err := f.cfg.Source.OpenFragment(ctx, c)
	switch {
	case errors.Is(err, ErrNotFound):
		f.answer(s, log, fragHeader{Found: false})
		return
	case err != nil:
		log.Warn("open fragment", "err", err)
		f.answer(s, log, fragHeader{Error: "fragment source failed"})
		return
	}
	defer func() { _ = rc.Close() }()
	if size < 0 {
		log.Warn("fragment source reported a negative size", "size", size)
		f.answer(s, log, fragHeader{Error: "fragment source failed"})
		return
	}
	_ = s.SetWriteDeadline(time.Now().Add(fragStallTimeout))
	if err := WriteMsg(s, fragHeader{Found: true, Size: size}); err != nil {
		log.Debug("write fragment header", "err", err)
		_ = s.Reset()
		return
	}
	if err := f.send(ctx, s, from, rc, size); err != nil {
		log.Debug("fragment upload aborted", "err", err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// answer writes a header with no body and closes.
func (f *fragServer) answer(s network.Stream, log *slog.Logger, hdr fragHeader) {
	_ = s.SetWriteDeadline(time.Now().Add(fragRequestTimeout))
	if err := WriteMsg(s, hdr); err != nil {
		log.Debug("write fragment header", "err", err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// send copies exactly size bytes from r to s in chunks, each charged to the
// limiter before it is written, so the cap holds while streaming.
func (f *fragServer) send(ctx context.Context, s network.Stream, to peer.ID, r io.Reader, size int64) error {
	buf := make([]byte, min(int64(f.chunk), size))
	for left := size; left > 0; {
		n := int(min(int64(len(buf)), left))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return fmt.Errorf("read source at %d of %d bytes: %w", size-left, size, err)
		}
		if f.wait != nil {
			wctx, cancel := context.WithTimeout(ctx, fragStallTimeout)
			err := f.wait(wctx, n)
			cancel()
			if err != nil {
				return fmt.Errorf("rate limiter: %w", err)
			}
		}
		if f.cfg.Shaper != nil {
			if err := f.cfg.Shaper.Send(ctx, to, n); err != nil {
				return fmt.Errorf("shaper: %w", err)
			}
		}
		_ = s.SetWriteDeadline(time.Now().Add(fragStallTimeout))
		if _, err := s.Write(buf[:n]); err != nil {
			return fmt.Errorf("write at %d of %d bytes: %w", size-left, size, err)
		}
		f.cfg.Meter.AddSent(to, n)
		left -= int64(n)
	}
	return nil
}
