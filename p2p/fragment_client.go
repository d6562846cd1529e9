package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/relaymesh/relaymesh/core"
)

// FetchOption adjusts one FetchFragment call.
type FetchOption func(*fetchOptions)

type fetchOptions struct {
	redirect bool
	progress func(n int)
	meter    *Meter
	floor    int64         // bytes/s; 0: none
	grace    time.Duration // before the floor applies
	timeout  func(size int64) time.Duration
	header   time.Duration // 0: ctx bounds the wait for the header
}

// WithHeaderTimeout gives the source d to answer (its header read
// whole), when ctx allows longer: for an object whose size the caller
// does not know (a manifest), ctx is sized for the largest allowed, the
// header wait by d, and the payload by WithSizedTimeout. A source that
// does not answer in time fails with ErrNoAnswer.
func WithHeaderTimeout(d time.Duration) FetchOption {
	return func(o *fetchOptions) { o.header = d }
}

// WithSizedTimeout bounds the payload by the size the header announces
// (at most maxSize): once the header is read, the fetch must end within
// fn(size), whatever ctx allows. Waiting for the header is bounded by ctx.
func WithSizedTimeout(fn func(size int64) time.Duration) FetchOption {
	return func(o *fetchOptions) { o.timeout = fn }
}

// WithFloor cuts the transfer with ErrTooSlow when the payload arrives
// slower than bps bytes a second on average, counted from the header:
// after grace, by every moment t the fetch must have received bps·t
// bytes (so a fragment of n bytes has max(grace, n/bps) to arrive whole).
// Time spent in the WithProgress callback (the caller's own rate cap)
// does not count against the source. Waiting for the header is bounded by
// ctx only: a relay may fetch the fragment from upstream before it
// answers.
func WithFloor(bps int64, grace time.Duration) FetchOption {
	return func(o *fetchOptions) { o.floor, o.grace = bps, grace }
}

// WithProgress calls fn with the size of every chunk of payload received,
// before the fragment is verified.
func WithProgress(fn func(n int)) FetchOption {
	return func(o *fetchOptions) { o.progress = fn }
}

// WithRedirect lets the peer answer with other peers to ask instead (see
// FragmentServerConfig.Redirect): FetchFragment then returns a
// *RedirectError. Without it the peer serves the fragment itself.
func WithRedirect() FetchOption {
	return func(o *fetchOptions) { o.redirect = true }
}

// WithMeter counts the fragment payload received in m.
func WithMeter(m *Meter) FetchOption {
	return func(o *fetchOptions) { o.meter = m }
}

// FetchFragment fetches fragment c from peer p and verifies it against c.
//
// maxSize should be the fragment's real size when the caller knows it
// (from the manifest): it is sent to servers that speak
// FragmentProtocolSized, and a peer announcing more is cut before it sends
// a byte of payload.
//
// It returns an error wrapping ErrNotFound when p does not hold c,
// ErrTooLarge when p announces more than maxSize bytes, ErrTooSlow when the
// payload falls below the floor (WithFloor), ErrTruncated when
// the stream ends early, *RemoteError when p reports a failure,
// *RedirectError when p names other peers to ask (see WithRedirect), and
// core.ErrDigestMismatch when the bytes are not c's: the caller should
// penalise p for that one.
func FetchFragment(ctx context.Context, h host.Host, p peer.ID, c cid.Cid, maxSize int64,
	opts ...FetchOption,
) ([]byte, error) {
	v, err := FetchVerified(ctx, h, p, c, maxSize, opts...)
	return v.Bytes(), err
}

// FetchVerified is FetchFragment returning the bytes as core.Verified, so
// that storing them (cache.PutVerified) does not hash them again.
func FetchVerified(ctx context.Context, h host.Host, p peer.ID, c cid.Cid, maxSize int64,
	opts ...FetchOption,
) (core.Verified, error) {
	var o fetchOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := core.CheckCID(c); err != nil {
		return core.Verified{}, fmt.Errorf("p2p: fetch fragment: %w", err)
	}
	if maxSize <= 0 {
		return core.Verified{}, fmt.Errorf("%w: fetch fragment %s: maxSize %d: must be positive", ErrBadConfig, c, maxSize)
	}
	protos := []protocol.ID{FragmentProtocolSized, FragmentProtocol}
	if o.redirect {
		protos = []protocol.ID{FragmentProtocolSized, FragmentProtocolRedirect, FragmentProtocol}
	}
	s, err := openStream(ctx, h, p, protos...)
	if err != nil {
		return core.Verified{}, err
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	fail := func(err error) (core.Verified, error) {
		_ = s.Reset()
		return core.Verified{}, ctxErr(ctx, fmt.Errorf("p2p: fetch fragment %s from %s: %w", c, p, err))
	}

	req := fragRequest{CID: c.String(), FollowRedirects: o.redirect && s.Protocol() != FragmentProtocol}
	if s.Protocol() == FragmentProtocolSized {
		req.Max = maxSize
	}
	if err := WriteMsg(s, req); err != nil {
		return fail(err)
	}
	_ = s.CloseWrite()
	var hdr fragHeader
	var hr io.Reader = s
	var headerBy, answerBy time.Time
	if o.header > 0 {
		answerBy = earliest(ctx, time.Now().Add(o.header))
		_ = s.SetReadDeadline(answerBy)
	}
	if o.floor > 0 {
		// An honest server writes its header at once: once its first
		// byte is here, the rest must follow within the grace.
		hr = &firstByte{r: s, then: func() {
			headerBy = time.Now().Add(o.grace)
			if !answerBy.IsZero() && answerBy.Before(headerBy) {
				headerBy = answerBy
			}
			_ = s.SetReadDeadline(earliest(ctx, headerBy))
		}}
	}
	if err := ReadMsg(hr, maxFragHeader, &hdr); err != nil {
		if !headerBy.IsZero() && ctx.Err() == nil && !time.Now().Before(headerBy) {
			return fail(fmt.Errorf("%w: header not whole %s after its first byte: %w", ErrTooSlow, o.grace, err))
		}
		if !answerBy.IsZero() && ctx.Err() == nil && !time.Now().Before(answerBy) {
			return fail(fmt.Errorf("%w within %s: %w", ErrNoAnswer, o.header, err))
		}
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: stream closed without a header", ErrBadMsg)
		}
		return fail(err)
	}
	switch {
	case len(hdr.Redirect) > 0:
		_ = s.Close()
		if !req.FollowRedirects {
			return core.Verified{}, fmt.Errorf("p2p: fetch fragment %s from %s: %w: a redirect that was not asked for", c, p, ErrBadMsg)
		}
		if hdr.Found {
			return core.Verified{}, fmt.Errorf("p2p: fetch fragment %s from %s: %w: a redirect that also serves", c, p, ErrBadMsg)
		}
		rd, err := decodeRedirect(p, hdr.Redirect)
		if err != nil {
			return core.Verified{}, fmt.Errorf("p2p: fetch fragment %s from %s: %w", c, p, err)
		}
		return core.Verified{}, rd
	case hdr.Error == busyAnswer:
		_ = s.Close()
		return core.Verified{}, fmt.Errorf("p2p: fetch fragment %s from %s: %w", c, p, ErrBusy)
	case hdr.Error == tooLargeAnswer:
		_ = s.Close()
		return core.Verified{}, fmt.Errorf("p2p: fetch fragment %s from %s: %w: %d bytes announced, limit %d", c, p, ErrTooLarge, hdr.Size, maxSize)
	case hdr.Error != "":
		_ = s.Close()
		return core.Verified{}, fmt.Errorf("p2p: fetch fragment %s from %s: %w", c, p, &RemoteError{Msg: hdr.Error})
	case !hdr.Found:
		_ = s.Close()
		return core.Verified{}, fmt.Errorf("%w: %s at %s", ErrNotFound, c, p)
	case hdr.Size < 0:
		return fail(fmt.Errorf("%w: negative size %d", ErrBadMsg, hdr.Size))
	case hdr.Size > maxSize:
		return fail(fmt.Errorf("%w: %d bytes announced, limit %d", ErrTooLarge, hdr.Size, maxSize))
	}

	data := make([]byte, hdr.Size)
	body := time.Now()
	var local time.Duration // spent in the caller's progress callback
	ctxDeadline, hasDeadline := ctx.Deadline()
	sized := false // the deadline is the one for the announced size
	if o.timeout != nil {
		if dl := body.Add(o.timeout(hdr.Size)); !hasDeadline || dl.Before(ctxDeadline) {
			ctxDeadline, hasDeadline, sized = dl, true, true
		}
	}
	_ = s.SetReadDeadline(ctxDeadline) // the zero time when there is none
	for off := 0; off < len(data); {
		var floorAt time.Time // when the bytes so far stop being enough
		if o.floor > 0 {
			need := max(o.grace, time.Duration(float64(off)/float64(o.floor)*float64(time.Second)))
			floorAt = body.Add(local + need)
			dl := floorAt
			if hasDeadline && ctxDeadline.Before(dl) {
				dl = ctxDeadline
			}
			_ = s.SetReadDeadline(dl)
		}
		n, err := s.Read(data[off:min(off+fragChunk, len(data))])
		off += n
		o.meter.AddRecv(p, n)
		if o.progress != nil && n > 0 {
			t := time.Now()
			o.progress(n)
			local += time.Since(t)
		}
		if o.floor > 0 && err == nil && off < len(data) {
			// Bytes may come at once and be paced after the read (the
			// simulator's shaper): check the floor on what arrived too.
			if took := time.Since(body) - local; took > o.grace && float64(off) < float64(o.floor)*took.Seconds() {
				return fail(fmt.Errorf("%w: got %d of %d bytes in %s, floor %d B/s after %s",
					ErrTooSlow, off, len(data), took.Round(time.Millisecond), o.floor, o.grace))
			}
		}
		if err == nil {
			continue
		}
		switch {
		case !floorAt.IsZero() && ctx.Err() == nil && !time.Now().Before(floorAt) &&
			(!hasDeadline || floorAt.Before(ctxDeadline)):
			took := time.Since(body) - local
			return fail(fmt.Errorf("%w: got %d of %d bytes in %s, floor %d B/s after %s",
				ErrTooSlow, off, len(data), took.Round(time.Millisecond), o.floor, o.grace))
		case sized && ctx.Err() == nil && !time.Now().Before(ctxDeadline):
			return fail(fmt.Errorf("%w: got %d of %d bytes in %s, the time allowed for that size",
				ErrTooSlow, off, len(data), o.timeout(hdr.Size)))
		case errors.Is(err, io.EOF) && off == len(data):
			// the last bytes came with the end of the stream
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return fail(fmt.Errorf("%w: got %d of %d bytes", ErrTruncated, off, len(data)))
		default:
			return fail(fmt.Errorf("%w: got %d of %d bytes: %w", ErrTruncated, off, len(data), err))
		}
	}
	_ = s.Close()
	v, err := core.Verify(c, data)
	if err != nil {
		return core.Verified{}, fmt.Errorf("p2p: fetch fragment from %s: %w", p, err)
	}
	return v, nil
}

// firstByte calls then after the first byte was read through it.
type firstByte struct {
	r    io.Reader
	then func()
	done bool
}

func (f *firstByte) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && !f.done {
		f.done = true
		f.then()
	}
	return n, err
}

// earliest is t, or ctx's deadline when that comes first.
func earliest(ctx context.Context, t time.Time) time.Time {
	if dl, ok := ctx.Deadline(); ok && dl.Before(t) {
		return dl
	}
	return t
}
