package p2p

import (
	"net/netip"
	"sync"
	"time"

	"fmt"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"log/slog"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/x/rate"
	ma "github.com/multiformats/go-multiaddr"
)

// DefaultListenAddr is where a host listens when HostConfig.ListenAddrs is nil.
const DefaultListenAddr = "/ip4/127.0.0.1/tcp/0"

// HostConfig configures NewHost.
type HostConfig struct {
	// ListenAddrs are the multiaddrs to listen on. nil means
	// DefaultListenAddr; an empty non-nil slice means a dial-only host
	// that listens nowhere.
	ListenAddrs []string
	// Identity is the host's ed25519 key; its peer ID is the node's
	// identity. Required: a host never invents an identity silently.
	Identity crypto.PrivKey
	// Gater, when set, decides which peers may connect.
	Gater *Gater
	// Enrolled, when set, tells the peers that get the fleet's per-peer
	// resource limits; every other peer gets the much lower Stranger*
	// limits. Set it on a host whose Gater is Open; call Promote when a
	// peer becomes enrolled. nil gives every connected peer fleet limits.
	Enrolled func(peer.ID) bool
	// Logger receives the host's logs; nil discards them.
	Logger *slog.Logger
	// Meter, when set, counts every stream byte of every protocol
	// (framing included) per peer class: the wire-level view, for WAN
	// accounting. Fragment payload is counted separately through
	// FragmentServerConfig.Meter and WithMeter; use another Meter there.
	Meter *Meter
	// AddrsFactory, when set, chooses the addresses the host advertises
	// (identify, h.Addrs) from its listen addresses expanded to every
	// interface; nil advertises them all.
	AddrsFactory func([]ma.Multiaddr) []ma.Multiaddr
	// Network is the transport the host dials and listens with; nil means
	// TCP.
	Network Network
}

// DefaultHostConfig returns a config listening on DefaultListenAddr with the
// given identity.
func DefaultHostConfig(id crypto.PrivKey) HostConfig {
	return HostConfig{ListenAddrs: []string{DefaultListenAddr}, Identity: id}
}

// Validate reports the first bad field.
func (c HostConfig) Validate() error {
	if c.Identity == nil {
		return fmt.Errorf("%w: host config: Identity is nil: generate one with GenerateIdentity", ErrBadConfig)
	}
	if c.Identity.Type() != crypto.Ed25519 {
		return fmt.Errorf("%w: host config: Identity is a %s key: %w", ErrBadConfig, c.Identity.Type(), ErrNotEd25519)
	}
	for i, s := range c.ListenAddrs {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return fmt.Errorf("%w: host config: ListenAddrs[%d] %q: %w", ErrBadConfig, i, s, err)
		}
	}
	return nil
}

// NewHost builds a libp2p host that only does what relaymesh asks: TCP
// (or cfg.Network), Noise, yamux, and nothing that dials, maps ports or advertises by itself.
func NewHost(cfg HostConfig) (host.Host, error) {
	if cfg.ListenAddrs == nil {
		cfg.ListenAddrs = []string{DefaultListenAddr}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rm, err := newResourceManager(cfg.Enrolled)
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	// libp2p's default connection manager trims above 192 connections; a
	// coordinator talks to thousands of nodes and a relay to its whole site.
	cm, err := connmgr.NewConnManager(4000, 5000, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Identity),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		// Without a forced reachability libp2p runs an AutoNAT v1 client
		// that keeps probing in the background; a static answer stops it.
		// Nothing here depends on the value: no relay, no hole punching.
		libp2p.ForceReachabilityPrivate(),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
	}
	if cfg.Network != nil {
		opts = append(opts, libp2p.Transport(newTransport(cfg.Network)))
	} else {
		opts = append(opts, libp2p.Transport(tcp.NewTCPTransport))
	}
	if len(cfg.ListenAddrs) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings(cfg.ListenAddrs...))
	}
	if cfg.Gater != nil {
		opts = append(opts, libp2p.ConnectionGater(cfg.Gater))
	}
	if cfg.Meter != nil {
		opts = append(opts, libp2p.BandwidthReporter(meterReporter{cfg.Meter}))
	}
	if cfg.AddrsFactory != nil {
		opts = append(opts, libp2p.AddrsFactory(cfg.AddrsFactory))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		_ = rm.Close() // idempotent; libp2p closes it on some failure paths only
		return nil, fmt.Errorf("p2p: new host: %w", err)
	}
	if cfg.Logger != nil {
		cfg.Logger.Debug("p2p host up", "peer", h.ID(), "addrs", h.Addrs())
	}
	return h, nil
}

// newResourceManager keeps libp2p's memory, connection and file descriptor
// limits (scaled to the machine) but raises the stream limits so that a
// coordinator or relay can carry ~1000 concurrent streams: a relay serving
// a site pulls many fragments at once. Infinite limits were the
// alternative; they would leave an enrolled-but-misbehaving peer free to
// exhaust memory and descriptors. With enrolled set, a peer it refuses
// gets strangerLimit instead of the fleet's per-peer limits.
func newResourceManager(enrolled func(peer.ID) bool) (network.ResourceManager, error) {
	var lim rcmgr.Limiter = fleetLimits()
	if enrolled != nil {
		lim = peerLimiter{Limiter: lim, enrolled: enrolled}
	}
	return rcmgr.NewResourceManager(lim,
		rcmgr.WithLimitPerSubnet(
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: ConnsPerIP}},
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: ConnsPerIP}}),
		rcmgr.WithConnRateLimiters(connRateLimiter()))
}

// fleetLimits are the limits of a host serving the fleet, computed once.
var fleetLimits = sync.OnceValue(func() rcmgr.Limiter {
	const (
		systemStreams = 8192
		peerStreams   = 2048
		systemConns   = 16384
	)
	streams := func(n int) rcmgr.ResourceLimits {
		v := rcmgr.LimitVal(n)
		return rcmgr.ResourceLimits{Streams: v, StreamsInbound: v, StreamsOutbound: v}
	}
	// A coordinator holds a connection per node and a relay one per site
	// member: raise the connection and descriptor limits too (libp2p
	// scales its defaults to a desktop's few hundred peers).
	system := streams(systemStreams)
	system.Conns, system.ConnsInbound, system.ConnsOutbound = rcmgr.LimitVal(systemConns), rcmgr.LimitVal(systemConns), rcmgr.LimitVal(systemConns)
	system.FD = rcmgr.LimitVal(systemConns)
	transient := streams(peerStreams)
	transient.Conns, transient.ConnsInbound, transient.ConnsOutbound = rcmgr.LimitVal(systemConns/4), rcmgr.LimitVal(systemConns/4), rcmgr.LimitVal(systemConns/4)
	partial := rcmgr.PartialLimitConfig{
		System:              system,
		Transient:           transient,
		ServiceDefault:      streams(systemStreams),
		ServicePeerDefault:  streams(peerStreams),
		ProtocolDefault:     streams(systemStreams),
		ProtocolPeerDefault: streams(peerStreams),
		PeerDefault:         streams(peerStreams),
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	return rcmgr.NewFixedLimiter(partial.Build(limits.AutoScale()))
})

// Per source address limits. libp2p's defaults (8 concurrent connections
// and a burst of 16 new ones, then one per 5 s, per IPv4 address) suit a
// public DHT node; a relaymesh site behind NAT shows all its nodes to the
// coordinator, and to other sites' relays, as one address. These allow a
// site of a few thousand nodes behind one address, all starting at once;
// the system-wide connection limit above still bounds the total. Loopback
// is exempt in libp2p either way, which is why only tests in network
// namespaces see these limits.
const (
	ConnsPerIP      = 4096
	NewConnsPerIP   = 4096 // burst of new connections per address
	NewConnsPerIPPS = 64   // sustained new connections per second per address
)

func connRateLimiter() *rate.Limiter {
	per := rate.Limit{RPS: NewConnsPerIPPS, Burst: NewConnsPerIP}
	return &rate.Limiter{
		NetworkPrefixLimits: []rate.PrefixLimit{
			{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Limit: rate.Limit{}},
			{Prefix: netip.MustParsePrefix("::1/128"), Limit: rate.Limit{}},
		},
		SubnetRateLimiter: rate.SubnetLimiter{
			IPv4SubnetLimits: []rate.SubnetLimit{{PrefixLength: 32, Limit: per}},
			IPv6SubnetLimits: []rate.SubnetLimit{{PrefixLength: 56, Limit: per}},
			GracePeriod:      time.Minute,
		},
	}
}
