// Package memnet is an in-memory memberlist transport for the simulator.
// Unlike memberlist's MockNetwork, a crashed transport fails every packet
// and stream to it at once (instead of blocking its senders), its open
// streams are closed, and the network can be partitioned into groups that
// cannot reach each other.
package memnet

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

var (
	// ErrUnreachable is returned for a packet or stream to an address
	// that is unknown, crashed or on the other side of a partition.
	ErrUnreachable = errors.New("memnet: unreachable")
	// ErrTimeout is returned when a stream was not accepted in time.
	ErrTimeout = errors.New("memnet: dial timeout")
)

// Port is the gossip port every transport advertises.
const Port = 7946

// Network connects the transports it made.
type Network struct {
	mu     sync.RWMutex
	next   uint32
	byAddr map[string]*Transport
	group  map[string]int // partition group per address; 0 = none
	// PacketQueue is each transport's inbound packet buffer; a full one
	// drops packets, as a UDP socket does. 0 means 1024.
	PacketQueue int
}

// NewTransport returns a transport with a fresh address (10.x.y.z:7946)
// on n. name is for logs only.
func (n *Network) NewTransport(name string) *Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.byAddr == nil {
		n.byAddr = map[string]*Transport{}
		n.group = map[string]int{}
	}
	n.next++
	ip := net.IPv4(10, byte(n.next>>16), byte(n.next>>8), byte(n.next))
	q := n.PacketQueue
	if q == 0 {
		q = 1024
	}
	t := newTransport(n, name, ip, q)
	n.byAddr[t.addr.String()] = t
	return t
}

// Crash stops the transport at addr as a crashed host would: packets and
// streams to it fail at once and its open streams are closed.
func (n *Network) Crash(addr string) error {
	n.mu.RLock()
	t := n.byAddr[addr]
	n.mu.RUnlock()
	if t == nil {
		return fmt.Errorf("%w: %s", ErrUnreachable, addr)
	}
	t.crash()
	return nil
}

// Partition splits the given addresses into groups: an address in one
// group cannot reach one in another. Addresses not listed reach everyone.
// Open streams across groups are closed.
func (n *Network) Partition(groups ...[]string) {
	n.mu.Lock()
	n.group = map[string]int{}
	for i, g := range groups {
		for _, a := range g {
			n.group[a] = i + 1
		}
	}
	ts := make([]*Transport, 0, len(n.byAddr))
	for _, t := range n.byAddr {
		ts = append(ts, t)
	}
	n.mu.Unlock()
	for _, t := range ts {
		t.closeConns(func(peer string) bool { return !n.reachable(t.addr.String(), peer) })
	}
}

// Heal ends every partition.
func (n *Network) Heal() {
	n.mu.Lock()
	n.group = map[string]int{}
	n.mu.Unlock()
}

func (n *Network) reachable(a, b string) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	ga, gb := n.group[a], n.group[b]
	return ga == 0 || gb == 0 || ga == gb
}

// route returns the live transport at addr as seen from from.
func (n *Network) route(from, addr string) (*Transport, error) {
	n.mu.RLock()
	t := n.byAddr[addr]
	n.mu.RUnlock()
	if t == nil || t.down() || !n.reachable(from, addr) {
		return nil, fmt.Errorf("%w: %s from %s", ErrUnreachable, addr, from)
	}
	return t, nil
}
