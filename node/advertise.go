package node

import (
	"fmt"
	"net"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// LoopbackListen is the listen address of tests, the demo and the
// simulator: loopback, on a port the system picks.
const LoopbackListen = "/ip4/127.0.0.1/tcp/0"

// checkAdvertise validates one advertise entry: a multiaddr with an IP (or
// DNS name) and a TCP port that peers can dial, so not 0.0.0.0 or port 0.
func checkAdvertise(s string) error {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return err
	}
	if _, err := a.ValueForProtocol(ma.P_TCP); err != nil {
		return fmt.Errorf("no /tcp/PORT: give e.g. /ip4/10.0.0.17/tcp/%d", DefaultPort)
	}
	if port, _ := a.ValueForProtocol(ma.P_TCP); port == "0" {
		return fmt.Errorf("port 0 cannot be dialed: give the port the node listens on")
	}
	if ip, err := manet.ToIP(a); err == nil && ip.IsUnspecified() {
		return fmt.Errorf("%s cannot be dialed: give this host's address on the LAN", ip)
	}
	return nil
}

// routeIP returns this host's address on the route to the coordinator: the
// source address the kernel picks for a datagram to it. Connecting a UDP
// socket sends nothing; it only asks the routing table.
func routeIP(coord peer.AddrInfo) (net.IP, error) {
	var lastErr error
	for _, a := range coord.Addrs {
		ip, err := manet.ToIP(a)
		if err != nil {
			continue // a DNS name or another transport: try the next one
		}
		c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: ip, Port: 9})
		if err != nil {
			lastErr = err
			continue
		}
		local := c.LocalAddr().(*net.UDPAddr).IP
		_ = c.Close()
		return local, nil
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("the coordinator address has no IP: %v", coord.Addrs)
	}
	return nil, fmt.Errorf("node: no route to the coordinator: %w", lastErr)
}

// advertiser picks the addresses a node tells its peers and the
// coordinator: explicit ones when configured, else the listen addresses
// with unspecified IPs replaced by the address on the route to the
// coordinator.
type advertiser struct {
	explicit []ma.Multiaddr
	route    net.IP // nil when unknown
}

func newAdvertiser(explicit []string, coord peer.AddrInfo) (*advertiser, error) {
	a := &advertiser{}
	for _, s := range explicit {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: advertise %q: %w", ErrBadConfig, s, err)
		}
		a.explicit = append(a.explicit, m)
	}
	if len(a.explicit) == 0 {
		a.route, _ = routeIP(coord)
	}
	return a, nil
}

// addrs is a libp2p AddrsFactory: it gets the host's listen addresses
// expanded to every interface (with the ports in use) and returns what to
// advertise.
func (a *advertiser) addrs(in []ma.Multiaddr) []ma.Multiaddr {
	if len(a.explicit) > 0 {
		return a.explicit
	}
	var onRoute, other, loop []ma.Multiaddr
	for _, m := range in {
		ip, err := manet.ToIP(m)
		switch {
		case err != nil:
			other = append(other, m) // not IP (the simulator's transport): keep
		case a.route != nil && ip.Equal(a.route):
			onRoute = append(onRoute, m)
		case ip.IsLoopback():
			loop = append(loop, m)
		case ip.IsLinkLocalUnicast() || ip.IsUnspecified():
		default:
			other = append(other, m)
		}
	}
	switch {
	case len(onRoute) > 0:
		return onRoute
	case len(other) > 0:
		return other
	}
	return loop
}

// expand turns listen strings into the addresses advertised before the
// host runs (enrollment): unspecified IPs become the route address.
func (a *advertiser) expand(listen []string) []string {
	if len(a.explicit) > 0 {
		out := make([]string, len(a.explicit))
		for i, m := range a.explicit {
			out[i] = m.String()
		}
		return out
	}
	out := make([]string, 0, len(listen))
	for _, s := range listen {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			continue
		}
		if ip, err := manet.ToIP(m); err == nil && ip.IsUnspecified() && a.route != nil {
			if (ip.To4() != nil) != (a.route.To4() != nil) {
				continue
			}
			proto := "ip4"
			if a.route.To4() == nil {
				proto = "ip6"
			}
			// m is /ip4/0.0.0.0/<rest>: keep <rest> behind the route IP.
			rest := m[1:]
			head, err := ma.NewMultiaddr("/" + proto + "/" + a.route.String())
			if err != nil {
				continue
			}
			m = head.Encapsulate(rest)
		}
		out = append(out, m.String())
	}
	return out
}

// gossipAdvertise is the IP other members use for this node's gossip
// port: gossip_advertise, else gossip_bind unless it is unspecified, else
// the route address ("" lets memberlist choose).
func gossipAdvertise(c Config, route net.IP) string {
	if c.GossipAdvertise != "" {
		return c.GossipAdvertise
	}
	if ip := net.ParseIP(c.GossipBind); ip != nil && !ip.IsUnspecified() {
		return ""
	}
	if route != nil {
		return route.String()
	}
	return ""
}

// onlyLoopback reports whether every address in addrs is a loopback IP.
func onlyLoopback(addrs []ma.Multiaddr) bool {
	if len(addrs) == 0 {
		return false
	}
	for _, m := range addrs {
		ip, err := manet.ToIP(m)
		if err != nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// listensUnspecified reports whether a listen address has 0.0.0.0 or ::.
func listensUnspecified(listen []string) bool {
	for _, s := range listen {
		if m, err := ma.NewMultiaddr(s); err == nil {
			if ip, err := manet.ToIP(m); err == nil && ip.IsUnspecified() {
				return true
			}
		}
	}
	return false
}

// checkAdvertised warns when site peers cannot reach what this node
// advertises: only loopback while the coordinator is elsewhere, or no
// route to the coordinator to choose an address by.
func (n *Node) checkAdvertised() {
	addrs := n.h.Addrs()
	if onlyLoopback(addrs) && !onlyLoopback(n.coord.Addrs) {
		n.log.Warn("site peers cannot reach this node: it listens and advertises on loopback only; "+
			"listen on the LAN (relaymesh node run --listen "+DefaultListen+") or set advertise",
			"advertise", addrs, "coordinator", n.coord.Addrs)
	}
	if len(n.cfg.Advertise) == 0 && n.adv.route == nil && listensUnspecified(n.cfg.Listen) {
		n.log.Warn("no route to the coordinator to pick the advertised address by; advertising every interface address (set advertise to choose)",
			"advertise", addrs)
	}
}

// enrollAddrs are the addresses an enrolling node tells the coordinator:
// what node run will advertise with the same settings.
func enrollAddrs(opts EnrollOptions, coord peer.AddrInfo) []string {
	adv, err := newAdvertiser(opts.Advertise, coord)
	if err != nil {
		return opts.Listen
	}
	return adv.expand(opts.Listen)
}
