package site

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// Defaults of the election and message limits.
const (
	DefaultRelaysPerSite  = 25
	DefaultMaxRelays      = 4
	DefaultHysteresis     = 1.5
	DefaultMaxMessageSize = 1 << 20
	keySize               = 32 // AES-256
)

// Config configures a Membership. Start from DefaultConfig or
// DefaultTestConfig.
type Config struct {
	// Name is the node's name in the pool: its libp2p peer ID (Meta.NodeID).
	Name string
	// BindAddr and BindPort are where memberlist listens (UDP and TCP).
	// BindPort 0 picks a free port; LocalAddr reports the one in use.
	// Ignored when Transport is set.
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort, when set, are what other members use
	// to reach this node (NAT, or BindAddr 0.0.0.0).
	AdvertiseAddr string
	AdvertisePort int
	// Label, when set, tags every gossip packet; members with another label
	// drop them. Set it to the site so pools of different sites never merge.
	Label string

	// Keyring holds the site's gossip keys, 32 bytes each (AES-256). The
	// first one encrypts; all of them decrypt. Required unless
	// InsecureNoEncryption.
	Keyring              [][]byte
	InsecureNoEncryption bool

	// Logger receives this package's logs; memberlist's own log lines go to
	// it at debug level. nil discards.
	Logger *slog.Logger
	// Transport replaces memberlist's UDP/TCP transport (the simulator's).
	Transport memberlist.Transport

	// Meta returns this node's current metadata; it is called from
	// memberlist goroutines whenever the node's meta is gossiped, so it must
	// be safe for concurrent use. After it changes call
	// Membership.UpdateMeta. Meta().NodeID must equal Name.
	Meta func() Meta

	// OnChange, if set, is called when the live members, their meta, or the
	// relay set change. Calls are serialized and coalesced, on a goroutine
	// of the Membership; a slow OnChange delays later ones, not gossip.
	OnChange func()
	// OnMessage, if set, receives the messages of SendTo and Broadcast.
	// from is the sender's node ID as the sender claims it (gossip is
	// authenticated by the fleet key only). Calls are serialized; msg is
	// owned by the callee.
	OnMessage func(from string, msg []byte)

	// Admit, when set, says which node IDs may be members of the site: the
	// view (Members, Relays, the election) holds only members it admits,
	// this node always, and messages that name another sender are dropped.
	// The node answers from the coordinator's signed member list, so a
	// process holding the gossip key but not enrolled is gossiped with by
	// memberlist yet counts for nothing. It is called often, from
	// memberlist's goroutines, under the view's lock: it must be fast, safe
	// for concurrent use, and must not call the Membership. After its
	// answers changed call Membership.Refresh. nil admits everyone.
	Admit func(nodeID string) bool

	// RelaysPerSite is the MultiRelayThreshold: a site with more live
	// members than this elects ceil(members/RelaysPerSite) relays, at most
	// MaxRelays.
	RelaysPerSite int
	MaxRelays     int
	// Hysteresis: a challenger replaces an incumbent relay only when it
	// scores at least Hysteresis × the incumbent's score. At least 1.
	Hysteresis float64
	// MaxMessageSize caps SendTo and Broadcast payloads; bigger incoming
	// messages are dropped.
	MaxMessageSize int
	// MessageQueue is how many received messages may wait for OnMessage;
	// more are dropped (and counted).
	MessageQueue int
	// AdviceTransmits is how many times each member passes on a Gossip
	// (advisory) message, whatever the site's size. 2 reaches about 80% of
	// a site by gossip alone; advice is repeated, and a member that missed
	// it still gets the fragment from its relay or a peer the relay names.
	// In bench-20x50, 2 instead of memberlist's RetransmitMult (4 on a LAN)
	// gave 24.0-33.8 s against 30.7-36.4 s (two runs each).
	AdviceTransmits int
	// Compress turns on memberlist's LZW compression of gossip. Off by
	// default: site gossip is a few hundred bytes per packet on a LAN, and
	// LZW allocates a fresh table for every packet; in the 1,000-node
	// simulation it took 45% of the CPU.
	Compress bool

	// Memberlist timings, copied into memberlist.Config.
	TCPTimeout       time.Duration
	IndirectChecks   int
	RetransmitMult   int
	SuspicionMult    int
	PushPullInterval time.Duration
	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	GossipInterval   time.Duration
	GossipNodes      int
	GossipToTheDead  time.Duration
}

// DefaultConfig has memberlist's LAN timings and the default election.
func DefaultConfig() Config {
	return fromMemberlist(memberlist.DefaultLANConfig())
}

// DefaultTestConfig has fast timers for tests and simulations on one host:
// a crashed member is declared dead in about a second.
func DefaultTestConfig() Config {
	c := fromMemberlist(memberlist.DefaultLocalConfig())
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0 // any free port
	c.TCPTimeout = 2 * time.Second
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 2 * time.Second
	c.GossipToTheDead = 2 * time.Second
	c.RetransmitMult = 3
	return c
}

func fromMemberlist(mc *memberlist.Config) Config {
	return Config{
		BindAddr:         mc.BindAddr,
		BindPort:         mc.BindPort,
		RelaysPerSite:    DefaultRelaysPerSite,
		MaxRelays:        DefaultMaxRelays,
		Hysteresis:       DefaultHysteresis,
		MaxMessageSize:   DefaultMaxMessageSize,
		MessageQueue:     256,
		AdviceTransmits:  2,
		TCPTimeout:       mc.TCPTimeout,
		IndirectChecks:   mc.IndirectChecks,
		RetransmitMult:   mc.RetransmitMult,
		SuspicionMult:    mc.SuspicionMult,
		PushPullInterval: mc.PushPullInterval,
		ProbeInterval:    mc.ProbeInterval,
		ProbeTimeout:     mc.ProbeTimeout,
		GossipInterval:   mc.GossipInterval,
		GossipNodes:      mc.GossipNodes,
		GossipToTheDead:  mc.GossipToTheDeadTime,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("%w: %s %v: %s", ErrBadConfig, field, v, want)
	}
	if c.Name == "" {
		return bad("Name", `""`, "set it to the node's peer ID")
	}
	if c.Transport == nil {
		if net.ParseIP(c.BindAddr) == nil {
			return bad("BindAddr", fmt.Sprintf("%q", c.BindAddr), "must be an IP address")
		}
		if c.BindPort < 0 || c.BindPort > 65535 {
			return bad("BindPort", c.BindPort, "must be 0 (any free port) to 65535")
		}
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return bad("AdvertiseAddr", fmt.Sprintf("%q", c.AdvertiseAddr), "must be an IP address or empty")
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return bad("AdvertisePort", c.AdvertisePort, "must be 0 (same as bind) to 65535")
	}
	if len(c.Label) > memberlist.LabelMaxSize {
		return bad("Label", fmt.Sprintf("of %d bytes", len(c.Label)), fmt.Sprintf("at most %d bytes", memberlist.LabelMaxSize))
	}
	if len(c.Keyring) == 0 && !c.InsecureNoEncryption {
		return bad("Keyring", "empty", "give the site's gossip key (32 bytes), or set InsecureNoEncryption")
	}
	for i, k := range c.Keyring {
		if len(k) != keySize {
			return bad(fmt.Sprintf("Keyring[%d]", i), fmt.Sprintf("of %d bytes", len(k)), "must be 32 bytes (AES-256)")
		}
	}
	if c.Meta == nil {
		return bad("Meta", "nil", "must return this node's metadata")
	}
	if c.RelaysPerSite < 1 {
		return bad("RelaysPerSite", c.RelaysPerSite, "must be at least 1")
	}
	if c.MaxRelays < 1 {
		return bad("MaxRelays", c.MaxRelays, "must be at least 1")
	}
	if !(c.Hysteresis >= 1) || c.Hysteresis > 1000 {
		return bad("Hysteresis", c.Hysteresis, "must be between 1 and 1000")
	}
	if c.MaxMessageSize < 1 {
		return bad("MaxMessageSize", c.MaxMessageSize, "must be at least 1")
	}
	if c.AdviceTransmits < 1 {
		return bad("AdviceTransmits", c.AdviceTransmits, "must be at least 1")
	}
	if c.MessageQueue < 1 {
		return bad("MessageQueue", c.MessageQueue, "must be at least 1")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"TCPTimeout", c.TCPTimeout},
		{"PushPullInterval", c.PushPullInterval},
		{"ProbeInterval", c.ProbeInterval},
		{"ProbeTimeout", c.ProbeTimeout},
		{"GossipInterval", c.GossipInterval},
		{"GossipToTheDead", c.GossipToTheDead},
	} {
		if d.v <= 0 {
			return bad(d.name, d.v, "must be positive")
		}
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		return bad("ProbeTimeout", c.ProbeTimeout, fmt.Sprintf("must be shorter than ProbeInterval %v", c.ProbeInterval))
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"IndirectChecks", c.IndirectChecks},
		{"RetransmitMult", c.RetransmitMult},
		{"SuspicionMult", c.SuspicionMult},
		{"GossipNodes", c.GossipNodes},
	} {
		if n.v < 1 {
			return bad(n.name, n.v, "must be at least 1")
		}
	}
	return nil
}

// memberlistConfig builds the memberlist config; d is the delegate.
func (c Config) memberlistConfig(d *delegate, logger *slog.Logger) (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.Name
	mc.BindAddr = c.BindAddr
	mc.BindPort = c.BindPort
	mc.AdvertiseAddr = c.AdvertiseAddr
	mc.AdvertisePort = c.AdvertisePort
	if c.AdvertisePort == 0 {
		mc.AdvertisePort = c.BindPort
	}
	mc.Label = c.Label
	mc.Transport = c.Transport
	mc.TCPTimeout = c.TCPTimeout
	mc.IndirectChecks = c.IndirectChecks
	mc.RetransmitMult = c.RetransmitMult
	mc.SuspicionMult = c.SuspicionMult
	mc.PushPullInterval = c.PushPullInterval
	mc.ProbeInterval = c.ProbeInterval
	mc.ProbeTimeout = c.ProbeTimeout
	mc.GossipInterval = c.GossipInterval
	mc.GossipNodes = c.GossipNodes
	mc.GossipToTheDeadTime = c.GossipToTheDead
	mc.EnableCompression = c.Compress
	mc.Delegate = d
	mc.Events = d
	mc.Logger = newStdLogger(logger, &d.m.undecryptable)
	if len(c.Keyring) > 0 {
		kr, err := memberlist.NewKeyring(c.Keyring, c.Keyring[0])
		if err != nil {
			return nil, fmt.Errorf("%w: Keyring: %w", ErrBadConfig, err)
		}
		mc.Keyring = kr
	}
	return mc, nil
}
