package p2p

import (
	"context"
	"net"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"
)

// Network is the network a host runs on. nil (in HostConfig and the node
// and coordinator configs that pass it on) means the machine's TCP stack.
// The simulator gives each simulated host its own (simulations/vnet),
// whose connections are in-memory pipes with the links' latency and
// bandwidth: libp2p still secures (Noise), multiplexes (yamux), gates and
// resource-manages them exactly as it does TCP connections.
type Network interface {
	// Transport builds the host's libp2p transport around the upgrader
	// (security and muxer) and resource manager libp2p made for the host.
	// Its addresses are /ip4/…/tcp/… multiaddrs, as TCP's are.
	Transport(up transport.Upgrader, rm network.ResourceManager) (transport.Transport, error)
	// Dial opens a plain connection to addr, as a TCP connect does: what a
	// node's reachability probe checks.
	Dial(ctx context.Context, addr ma.Multiaddr) (net.Conn, error)
}

// newTransport is the constructor libp2p.Transport takes for nw: libp2p
// fills its parameters from the host it is building.
func newTransport(nw Network) func(transport.Upgrader, network.ResourceManager) (transport.Transport, error) {
	return func(up transport.Upgrader, rm network.ResourceManager) (transport.Transport, error) {
		return nw.Transport(up, rm)
	}
}
