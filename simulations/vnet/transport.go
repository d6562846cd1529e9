package vnet

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/relaymesh/relaymesh/p2p"
)

var _ p2p.Network = (*Endpoint)(nil)

// Transport implements p2p.Network: the endpoint's libp2p transport.
func (e *Endpoint) Transport(up transport.Upgrader, rm network.ResourceManager) (transport.Transport, error) {
	if rm == nil {
		rm = &network.NullResourceManager{}
	}
	return &Transport{e: e, up: up, rm: rm}, nil
}

// Dial implements p2p.Network: a plain connection to addr, after one
// round trip, as a TCP connect.
func (e *Endpoint) Dial(ctx context.Context, addr ma.Multiaddr) (net.Conn, error) {
	return e.dial(ctx, addr)
}

func tcpAddr(a ma.Multiaddr) (*net.TCPAddr, error) {
	na, err := manet.ToNetAddr(a)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadAddr, a, err)
	}
	t, ok := na.(*net.TCPAddr)
	if !ok || t.IP.To4() == nil {
		return nil, fmt.Errorf("%w: %s", ErrBadAddr, a)
	}
	return t, nil
}

// dial connects e to the listener at addr: the connection exists after a
// round trip (SYN, SYN-ACK), when the listener gets its end.
func (e *Endpoint) dial(ctx context.Context, addr ma.Multiaddr) (*Conn, error) {
	ra, err := tcpAddr(addr)
	if err != nil {
		return nil, err
	}
	n := e.n
	n.mu.Lock()
	b := n.byIP[ra.IP.String()]
	if b == nil || !n.reachable(e, b) {
		n.mu.Unlock()
		return nil, fmt.Errorf("%w: %s from %s", ErrUnreachable, ra, e.ip)
	}
	lp := e.nextPort
	e.nextPort++
	if e.nextPort > 65535 {
		e.nextPort = 40000
	}
	n.mu.Unlock()
	rtt := n.route(e, b).latency + n.route(b, e).latency
	if rtt > 0 {
		t := time.NewTimer(rtt)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	n.mu.Lock()
	l := b.listeners[ra.Port]
	if !n.reachable(e, b) {
		n.mu.Unlock()
		return nil, fmt.Errorf("%w: %s from %s", ErrUnreachable, ra, e.ip)
	}
	if l == nil {
		n.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrRefused, ra)
	}
	p := n.newPair(e, b, &net.TCPAddr{IP: e.ip, Port: lp}, ra)
	n.conns[p] = struct{}{}
	n.mu.Unlock()
	select {
	case l.backlog <- p.cb:
		return p.ca, nil
	case <-l.closed:
		err = fmt.Errorf("%w: %s", ErrRefused, ra)
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.reset()
	return nil, err
}

// Transport is an endpoint's libp2p transport: TCP's, over the simulated
// network. It claims /tcp addresses, so a host has it instead of TCP.
type Transport struct {
	e  *Endpoint
	up transport.Upgrader
	rm network.ResourceManager
}

var _ transport.Transport = (*Transport)(nil)

// Dial implements transport.Transport as the TCP transport does: a
// resource-manager scope, the connection, then the upgrade (Noise, yamux).
func (t *Transport) Dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID) (transport.CapableConn, error) {
	scope, err := t.rm.OpenConnection(network.DirOutbound, true, raddr)
	if err != nil {
		return nil, err
	}
	if err := scope.SetPeer(p); err != nil {
		scope.Done()
		return nil, err
	}
	c, err := t.e.dial(ctx, raddr)
	if err != nil {
		scope.Done()
		return nil, err
	}
	dir := network.DirOutbound
	if ok, isClient, _ := network.GetSimultaneousConnect(ctx); ok && !isClient {
		dir = network.DirInbound
	}
	cc, err := t.up.Upgrade(ctx, t, c, dir, p, scope)
	if err != nil {
		_ = c.Close()
		scope.Done()
		return nil, err
	}
	return cc, nil
}

// CanDial implements transport.Transport.
func (t *Transport) CanDial(addr ma.Multiaddr) bool {
	_, err := tcpAddr(addr)
	return err == nil
}

// Listen implements transport.Transport. laddr must be this endpoint's
// address (port 0 picks one).
func (t *Transport) Listen(laddr ma.Multiaddr) (transport.Listener, error) {
	la, err := tcpAddr(laddr)
	if err != nil {
		return nil, err
	}
	e, n := t.e, t.e.n
	if !la.IP.Equal(e.ip) {
		return nil, fmt.Errorf("vnet: listen on %s: this host is %s", la, e.ip)
	}
	n.mu.Lock()
	if la.Port == 0 {
		la.Port = e.nextPort
		e.nextPort++
	}
	if e.listeners[la.Port] != nil {
		n.mu.Unlock()
		return nil, fmt.Errorf("vnet: listen on %s: address in use", la)
	}
	l := &listener{e: e, addr: la, backlog: make(chan *Conn, 128), closed: make(chan struct{})}
	l.ma, _ = manet.FromNetAddr(la)
	e.listeners[la.Port] = l
	n.mu.Unlock()
	return t.up.UpgradeGatedMaListener(t, t.up.GateMaListener(l)), nil
}

// Protocols implements transport.Transport.
func (t *Transport) Protocols() []int { return []int{ma.P_TCP} }

// Proxy implements transport.Transport.
func (t *Transport) Proxy() bool { return false }

func (t *Transport) String() string { return "vnet" }

// listener is a manet.Listener on an endpoint's port.
type listener struct {
	e       *Endpoint
	addr    *net.TCPAddr
	ma      ma.Multiaddr
	backlog chan *Conn
	once    sync.Once
	closed  chan struct{}
}

var _ manet.Listener = (*listener)(nil)

func (l *listener) Accept() (manet.Conn, error) {
	select {
	case c := <-l.backlog:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		n := l.e.n
		n.mu.Lock()
		if l.e.listeners[l.addr.Port] == l {
			delete(l.e.listeners, l.addr.Port)
		}
		n.mu.Unlock()
		for {
			select {
			case c := <-l.backlog:
				c.p.reset()
			default:
				return
			}
		}
	})
	return nil
}

func (l *listener) Addr() net.Addr          { return l.addr }
func (l *listener) Multiaddr() ma.Multiaddr { return l.ma }
