package memnet

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Transport is one host's memberlist transport on a Network.
type Transport struct {
	n        *Network
	name     string
	addr     *net.TCPAddr
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	once     sync.Once

	mu    sync.Mutex
	conns map[*conn]struct{}
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

func newTransport(n *Network, name string, ip net.IP, queue int) *Transport {
	return &Transport{
		n: n, name: name, addr: &net.TCPAddr{IP: ip, Port: Port},
		packetCh: make(chan *memberlist.Packet, queue),
		streamCh: make(chan net.Conn, 64),
		done:     make(chan struct{}),
		conns:    map[*conn]struct{}{},
	}
}

// Addr is the transport's host:port.
func (t *Transport) Addr() string { return t.addr.String() }

// Crash stops the transport as a crashed host would.
func (t *Transport) Crash() { t.crash() }

func (t *Transport) down() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

func (t *Transport) crash() {
	t.once.Do(func() { close(t.done) })
	t.closeConns(func(string) bool { return true })
}

func (t *Transport) closeConns(match func(peer string) bool) {
	t.mu.Lock()
	var victims []*conn
	for c := range t.conns {
		if match(c.peer) {
			victims = append(victims, c)
		}
	}
	t.mu.Unlock()
	for _, c := range victims {
		_ = c.Close()
	}
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *Transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.addr.IP, t.addr.Port, nil
}

// WriteTo implements memberlist.Transport.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport. A packet to an
// unreachable host fails at once, as a UDP write error memberlist counts
// as a failed probe; one to a full queue is dropped.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	if t.down() {
		return now, opError("write", "udp", t.addr, fmt.Errorf("%w: %s is down", ErrUnreachable, t.Addr()))
	}
	dst, err := t.n.route(t.Addr(), a.Addr)
	if err != nil {
		return now, opError("write", "udp", t.addr, err)
	}
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: t.addr, Timestamp: now}
	select {
	case dst.packetCh <- p:
	case <-dst.done:
		return now, opError("write", "udp", t.addr, fmt.Errorf("%w: %s is down", ErrUnreachable, a.Addr))
	default: // queue full: dropped, as UDP would
	}
	return now, nil
}

// opError wraps err the way the net package does, so memberlist treats it
// as the remote host failing (its failedRemote looks at Op and Net).
func opError(op, network string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: network, Addr: addr, Err: err}
}

// PacketCh implements memberlist.Transport.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout implements memberlist.Transport.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.down() {
		return nil, opError("dial", "tcp", t.addr, fmt.Errorf("%w: %s is down", ErrUnreachable, t.Addr()))
	}
	dst, err := t.n.route(t.Addr(), a.Addr)
	if err != nil {
		return nil, opError("dial", "tcp", t.addr, err)
	}
	p1, p2 := net.Pipe()
	remote := dst.track(p1, t.Addr())
	local := t.track(p2, a.Addr)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case dst.streamCh <- remote:
		return local, nil
	case <-dst.done:
		err = fmt.Errorf("%w: %s is down", ErrUnreachable, a.Addr)
	case <-t.done:
		err = fmt.Errorf("%w: %s is down", ErrUnreachable, t.Addr())
	case <-timer.C:
		err = fmt.Errorf("%w: %s after %s", ErrTimeout, a.Addr, timeout)
	}
	_ = remote.Close()
	_ = local.Close()
	return nil, opError("dial", "tcp", t.addr, err)
}

// StreamCh implements memberlist.Transport.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown implements memberlist.Transport: the host leaves the network.
func (t *Transport) Shutdown() error {
	t.crash()
	return nil
}

// conn is one end of a stream; closing it forgets it.
type conn struct {
	net.Conn
	t    *Transport
	peer string
	once sync.Once
}

// RemoteAddr is the address of the other host.
func (c *conn) RemoteAddr() net.Addr {
	if a, err := net.ResolveTCPAddr("tcp", c.peer); err == nil {
		return a
	}
	return c.Conn.RemoteAddr()
}

func (c *conn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c)
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

func (t *Transport) track(nc net.Conn, peer string) *conn {
	c := &conn{Conn: nc, t: t, peer: peer}
	t.mu.Lock()
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	if t.down() {
		_ = c.Close()
	}
	return c
}
