package vnet

import (
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/time/rate"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// A pair is one connection: two Conns, a → b and b → a, over two pipes.
type pair struct {
	n    *Network
	a, b *Endpoint
	ca   *Conn // a's end
	cb   *Conn // b's end

	resetOnce sync.Once
	dead      chan struct{} // closed when a fault cut the connection
}

func (p *pair) reset() {
	p.resetOnce.Do(func() {
		close(p.dead)
		p.forget()
	})
}

func (p *pair) forget() {
	p.n.mu.Lock()
	delete(p.n.conns, p)
	p.n.mu.Unlock()
}

// chunk is bytes written at once, readable from at on.
type chunk struct {
	b   []byte
	at  time.Time
	eof bool
}

// pipe is one direction of a connection. Its writer and reader wait on
// channels and timers only, never on a lock held across a wait, so a
// synctest bubble sees them durably blocked.
type pipe struct {
	mu         sync.Mutex
	q          []chunk
	off        int // bytes of q[0] already read
	unread     int // bytes in q
	readerGone bool
	readable   chan struct{} // 1-buffered: the reader has something new
	writable   chan struct{} // 1-buffered: the writer has room again
}

func newPipe() *pipe {
	return &pipe{readable: make(chan struct{}, 1), writable: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Conn is one end of a simulated connection: a net.Conn and a manet.Conn.
type Conn struct {
	p            *pair
	in, out      *pipe
	r            route // of out
	window       int
	chunk        int
	laddr, raddr *net.TCPAddr
	lma, rma     ma.Multiaddr

	wsem      chan struct{} // one writer at a time, kept in order
	rd, wd    deadline
	closeOnce sync.Once
	closed    chan struct{}
}

var _ manet.Conn = (*Conn)(nil)

// newPair connects a (the dialer, from laddr) to b at raddr.
func (n *Network) newPair(a, b *Endpoint, laddr, raddr *net.TCPAddr) *pair {
	p := &pair{n: n, a: a, b: b, dead: make(chan struct{})}
	ab, ba := newPipe(), newPipe()
	mk := func(from, to *Endpoint, l, r *net.TCPAddr, in, out *pipe) *Conn {
		lma, _ := manet.FromNetAddr(l)
		rma, _ := manet.FromNetAddr(r)
		return &Conn{p: p, in: in, out: out, r: n.route(from, to), window: n.cfg.Window, chunk: n.cfg.Chunk,
			laddr: l, raddr: r, lma: lma, rma: rma,
			wsem: make(chan struct{}, 1), rd: newDeadline(), wd: newDeadline(), closed: make(chan struct{})}
	}
	p.ca = mk(a, b, laddr, raddr, ba, ab)
	p.cb = mk(b, a, raddr, laddr, ab, ba)
	return p
}

// Read implements net.Conn: it returns bytes whose latency has passed.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		select {
		case <-c.closed:
			return 0, net.ErrClosed
		case <-c.p.dead:
			return 0, ErrReset
		case <-c.rd.wait():
			return 0, os.ErrDeadlineExceeded
		default:
		}
		p := c.in
		now := time.Now()
		p.mu.Lock()
		n := 0
		var next time.Time
		for n < len(b) && len(p.q) > 0 {
			h := &p.q[0]
			if h.at.After(now) {
				next = h.at
				break
			}
			if h.eof {
				break
			}
			k := copy(b[n:], h.b[p.off:])
			n += k
			p.off += k
			if p.off == len(h.b) {
				p.q[0] = chunk{}
				p.q = p.q[1:]
				p.off = 0
			}
		}
		eof := n == 0 && len(p.q) > 0 && p.q[0].eof && !p.q[0].at.After(now)
		p.unread -= n
		p.mu.Unlock()
		if n > 0 {
			signal(p.writable)
			return n, nil
		}
		if eof {
			return 0, io.EOF
		}
		var timer *time.Timer
		var due <-chan time.Time
		if !next.IsZero() {
			timer = time.NewTimer(next.Sub(now))
			due = timer.C
		}
		select {
		case <-p.readable:
		case <-due:
		case <-c.closed:
		case <-c.p.dead:
		case <-c.rd.wait():
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// Write implements net.Conn: each chunk waits for room in the window,
// then for every link of the route, then is readable a latency later.
func (c *Conn) Write(b []byte) (int, error) {
	select {
	case c.wsem <- struct{}{}:
	case <-c.closed:
		return 0, net.ErrClosed
	case <-c.p.dead:
		return 0, ErrReset
	case <-c.wd.wait():
		return 0, os.ErrDeadlineExceeded
	}
	defer func() { <-c.wsem }()
	written := 0
	for len(b) > 0 {
		if err := c.broken(); err != nil {
			return written, err
		}
		k := min(len(b), c.chunk)
		if err := c.waitRoom(k); err != nil {
			return written, err
		}
		if err := c.pay(k); err != nil {
			return written, err
		}
		ch := chunk{b: append([]byte(nil), b[:k]...), at: time.Now().Add(c.r.latency)}
		p := c.out
		p.mu.Lock()
		if p.readerGone {
			p.mu.Unlock()
			return written, ErrReset
		}
		p.q = append(p.q, ch)
		p.unread += k
		p.mu.Unlock()
		signal(p.readable)
		for _, ctr := range c.r.counters {
			ctr.Add(int64(k))
		}
		written += k
		b = b[k:]
	}
	return written, nil
}

// broken is the error a write gets now, if any: select picks at random
// among ready cases, so the fatal ones are checked first.
func (c *Conn) broken() error {
	select {
	case <-c.closed:
		return net.ErrClosed
	case <-c.p.dead:
		return ErrReset
	case <-c.wd.wait():
		return os.ErrDeadlineExceeded
	default:
		return nil
	}
}

// waitRoom waits until k more bytes fit in the out pipe's window (an
// empty pipe always takes a chunk).
func (c *Conn) waitRoom(k int) error {
	for {
		p := c.out
		p.mu.Lock()
		gone, room := p.readerGone, p.unread == 0 || p.unread+k <= c.window
		p.mu.Unlock()
		if gone {
			return ErrReset
		}
		if room {
			return nil
		}
		select {
		case <-p.writable:
		case <-c.closed:
			return net.ErrClosed
		case <-c.p.dead:
			return ErrReset
		case <-c.wd.wait():
			return os.ErrDeadlineExceeded
		}
	}
}

// pay takes k bytes from every link of the route at once and waits for
// the longest of their delays: a chunk moves at the pace of its narrowest
// link, and every link it crosses is busy for it meanwhile.
func (c *Conn) pay(k int) error {
	now := time.Now()
	var d time.Duration
	rs := make([]*rate.Reservation, 0, len(c.r.links))
	for _, l := range c.r.links {
		r := l.ReserveN(now, k) // k ≤ chunk = every bucket's burst
		rs = append(rs, r)
		d = max(d, r.DelayFrom(now))
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	var err error
	select {
	case <-t.C:
		return nil
	case <-c.closed:
		err = net.ErrClosed
	case <-c.p.dead:
		err = ErrReset
	case <-c.wd.wait():
		err = os.ErrDeadlineExceeded
	}
	now = time.Now()
	for _, r := range rs {
		r.CancelAt(now)
	}
	return err
}

// Close implements net.Conn: the peer reads what was sent, then EOF; its
// later writes fail.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		p := c.out
		p.mu.Lock()
		p.q = append(p.q, chunk{eof: true, at: time.Now().Add(c.r.latency)})
		p.mu.Unlock()
		signal(p.readable)
		p = c.in
		p.mu.Lock()
		p.readerGone = true
		p.q, p.off, p.unread = nil, 0, 0
		p.mu.Unlock()
		signal(p.writable)
		c.rd.set(time.Time{})
		c.wd.set(time.Time{})
		if c.peerClosed() {
			c.p.forget()
		}
	})
	return nil
}

func (c *Conn) peerClosed() bool {
	other := c.p.ca
	if other == c {
		other = c.p.cb
	}
	select {
	case <-other.closed:
		return true
	default:
		return false
	}
}

func (c *Conn) LocalAddr() net.Addr                { return c.laddr }
func (c *Conn) RemoteAddr() net.Addr               { return c.raddr }
func (c *Conn) LocalMultiaddr() ma.Multiaddr       { return c.lma }
func (c *Conn) RemoteMultiaddr() ma.Multiaddr      { return c.rma }
func (c *Conn) SetReadDeadline(t time.Time) error  { c.rd.set(t); return nil }
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }
func (c *Conn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

// deadline is a channel closed when the deadline passes, as net.Pipe's.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{}
}

func newDeadline() deadline { return deadline{cancel: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the callback is closing it
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		c := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(c) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
