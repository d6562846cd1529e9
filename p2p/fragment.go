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
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/time/rate"

	"github.com/relaymesh/relaymesh/core"
)

// FragmentProtocol is the protocol ID of fragment transfer.
const FragmentProtocol protocol.ID = "/relaymesh/frag/1.0.0"

// FragmentProtocolRedirect is FragmentProtocol with redirects: a request
// may say it follows them, and the answer may then name other peers to ask.
// Servers speak both; a client that follows redirects offers this one
// first, so it still works with servers that know only 1.0.0.
const FragmentProtocolRedirect protocol.ID = "/relaymesh/frag/1.1.0"

// FragmentProtocolSized is FragmentProtocolRedirect with the requester's
// size limit in the request (fragRequest.Max): a relay that pulls the
// fragment through for the requester then caps and times its own fetch by
// the fragment's real size instead of the largest allowed. Clients offer
// it first; servers speak all three.
const FragmentProtocolSized protocol.ID = "/relaymesh/frag/1.2.0"

const (
	// fragChunk is the largest write of fragment bytes, and the unit the
	// upload limiter is charged in.
	fragChunk = 64 << 10
	// maxFragRequest and maxFragHeader bound the two JSON frames.
	maxFragRequest = 512
	maxFragHeader  = 4096
	// MaxRedirect bounds the peers a redirect names, and the addresses
	// given for each.
	MaxRedirect      = 4
	maxRedirectAddrs = 4
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
	// FollowRedirects (1.1.0 only) lets the server answer with peers to
	// ask instead.
	FollowRedirects bool `json:"follow_redirects,omitempty"`
	// Max (1.2.0 only) is the most bytes the requester accepts: the
	// fragment's size from its manifest, or the largest allowed when it
	// does not know it yet (a manifest).
	Max int64 `json:"max,omitempty"`
}

// fragHeader answers a fragRequest; when Found, Size raw bytes follow.
type fragHeader struct {
	Found bool   `json:"found"`
	Size  int64  `json:"size"`
	Error string `json:"error,omitempty"`
	// Redirect, with Found false, names peers to ask instead.
	Redirect []fragPeer `json:"redirect,omitempty"`
}

type fragPeer struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs,omitempty"`
}

// busyAnswer is the error text of a server whose source returned ErrBusy;
// a client maps it back to ErrBusy (older clients see a remote error).
const busyAnswer = "busy"

// tooLargeAnswer is the error text of a 1.2.0 server whose fragment is
// larger than the request's Max; the header's Size says how large.
const tooLargeAnswer = "too large"

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
	// Redirect, when set, is asked before serving a request that follows
	// redirects: a busy origin names other peers that hold the fragment (at
	// most MaxRedirect are sent) and the requester asks them instead.
	Redirect func(from peer.ID, c cid.Cid) []peer.AddrInfo
	// Served, when set, is told of every fragment sent whole.
	Served func(to peer.ID, c cid.Cid)
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
	h.SetStreamHandler(FragmentProtocolRedirect, srv.handle)
	h.SetStreamHandler(FragmentProtocolSized, srv.handle)
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
	if req.FollowRedirects && s.Protocol() == FragmentProtocol {
		f.answer(s, log, fragHeader{Error: "follow_redirects needs " + string(FragmentProtocolRedirect)})
		return
	}
	if req.Max != 0 && s.Protocol() != FragmentProtocolSized {
		f.answer(s, log, fragHeader{Error: "max needs " + string(FragmentProtocolSized)})
		return
	}
	if req.Max < 0 {
		f.answer(s, log, fragHeader{Error: fmt.Sprintf("max %d: must be positive", req.Max)})
		return
	}
	if f.cfg.Redirect != nil && req.FollowRedirects {
		if peers := f.cfg.Redirect(from, c); len(peers) > 0 {
			f.answer(s, log, fragHeader{Redirect: encodeRedirect(peers)})
			return
		}
	}

	ctx, cancel := context.WithCancel(withRequestMax(WithRequester(context.Background(), from), req.Max))
	defer cancel()
	rc, size, err := f.cfg.Source.OpenFragment(ctx, c)
	switch {
	case errors.Is(err, ErrNotFound):
		f.answer(s, log, fragHeader{Found: false})
		return
	case errors.Is(err, ErrBusy):
		f.answer(s, log, fragHeader{Error: busyAnswer})
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
	if req.Max > 0 && size > req.Max {
		// The requester would refuse it: do not send a byte of it.
		log.Warn("fragment larger than the requester accepts", "size", size, "max", req.Max)
		f.answer(s, log, fragHeader{Error: tooLargeAnswer, Size: size})
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
	if f.cfg.Served != nil {
		f.cfg.Served(from, c)
	}
}

type requesterKey struct{}

// WithRequester returns ctx carrying the peer a fragment is served to; the
// fragment server passes such a context to FragmentSource.OpenFragment.
func WithRequester(ctx context.Context, p peer.ID) context.Context {
	return context.WithValue(ctx, requesterKey{}, p)
}

// Requester returns the peer OpenFragment serves, or "" when unknown.
func Requester(ctx context.Context) peer.ID {
	p, _ := ctx.Value(requesterKey{}).(peer.ID)
	return p
}

type requestMaxKey struct{}

func withRequestMax(ctx context.Context, n int64) context.Context {
	if n <= 0 {
		return ctx
	}
	return context.WithValue(ctx, requestMaxKey{}, n)
}

// RequestMax returns the most bytes the requester OpenFragment serves
// accepts for the fragment (its real size, when the requester has the
// manifest), or 0 when it did not say (an older client).
func RequestMax(ctx context.Context) int64 {
	n, _ := ctx.Value(requestMaxKey{}).(int64)
	return n
}

func encodeRedirect(peers []peer.AddrInfo) []fragPeer {
	var out []fragPeer
	for _, p := range peers[:min(len(peers), MaxRedirect)] {
		fp := fragPeer{ID: p.ID.String()}
		for _, a := range p.Addrs[:min(len(p.Addrs), maxRedirectAddrs)] {
			fp.Addrs = append(fp.Addrs, a.String())
		}
		out = append(out, fp)
	}
	return out
}

// RedirectError is FetchFragment's answer when the peer asked named other
// peers to fetch the fragment from instead.
type RedirectError struct {
	From  peer.ID
	Peers []peer.AddrInfo
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("p2p: %s redirected the fetch to %d peers", e.From, len(e.Peers))
}

// decodeRedirect checks a redirect from p: at most MaxRedirect peers with
// valid IDs (not p itself) and addresses.
func decodeRedirect(p peer.ID, fps []fragPeer) (*RedirectError, error) {
	if len(fps) > MaxRedirect {
		return nil, fmt.Errorf("%w: redirect to %d peers, limit %d", ErrBadMsg, len(fps), MaxRedirect)
	}
	e := &RedirectError{From: p}
	for _, fp := range fps {
		id, err := DecodePeerID(fp.ID)
		if err != nil || id == p {
			return nil, fmt.Errorf("%w: redirect names peer %q", ErrBadMsg, fp.ID)
		}
		if len(fp.Addrs) > maxRedirectAddrs {
			return nil, fmt.Errorf("%w: redirect gives %d addresses for %s, limit %d", ErrBadMsg, len(fp.Addrs), id, maxRedirectAddrs)
		}
		ai := peer.AddrInfo{ID: id}
		for _, a := range fp.Addrs {
			m, err := ma.NewMultiaddr(a)
			if err != nil {
				return nil, fmt.Errorf("%w: redirect address %q: %w", ErrBadMsg, a, err)
			}
			ai.Addrs = append(ai.Addrs, m)
		}
		e.Peers = append(e.Peers, ai)
	}
	return e, nil
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
		_ = s.SetWriteDeadline(time.Now().Add(fragStallTimeout))
		if _, err := s.Write(buf[:n]); err != nil {
			return fmt.Errorf("write at %d of %d bytes: %w", size-left, size, err)
		}
		f.cfg.Meter.AddSent(to, n)
		left -= int64(n)
	}
	return nil
}
