package p2p

import (
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Class says where a peer sits relative to this host; byte accounting is
// kept per class so WAN traffic can be told from LAN traffic.
//
// ClassUnknown is the zero value, so a Classify that forgets a peer, or a
// Meter without Classify, never inflates a real class.
type Class int

const (
	ClassUnknown Class = iota
	ClassSameSite
	ClassOtherSite
	ClassCoordinator
	numClasses
)

func (c Class) String() string {
	switch c {
	case ClassSameSite:
		return "same-site"
	case ClassOtherSite:
		return "other-site"
	case ClassCoordinator:
		return "coordinator"
	default:
		return "unknown"
	}
}

// Counts are the bytes sent to and received from peers of one class.
type Counts struct {
	Sent int64
	Recv int64
}

// Meter counts bytes per peer class. The zero value is ready to use and
// counts everything as ClassUnknown; a nil *Meter counts nothing. Set
// Classify before first use. A Meter must not be copied after first use.
type Meter struct {
	// Classify maps a peer to its class. It is called on every count, from
	// many goroutines, so it must be fast and safe for concurrent use.
	Classify func(peer.ID) Class

	counts [numClasses]struct {
		sent atomic.Int64
		recv atomic.Int64
	}
}

func (m *Meter) class(p peer.ID) Class {
	if m.Classify == nil {
		return ClassUnknown
	}
	c := m.Classify(p)
	if c < 0 || c >= numClasses {
		return ClassUnknown
	}
	return c
}

// AddSent counts n bytes sent to p.
func (m *Meter) AddSent(p peer.ID, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.counts[m.class(p)].sent.Add(int64(n))
}

// AddRecv counts n bytes received from p.
func (m *Meter) AddRecv(p peer.ID, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.counts[m.class(p)].recv.Add(int64(n))
}

// Snapshot returns the counts of every class, zero ones included.
func (m *Meter) Snapshot() map[Class]Counts {
	out := make(map[Class]Counts, numClasses)
	for c := range numClasses {
		if m == nil {
			out[c] = Counts{}
			continue
		}
		out[c] = Counts{Sent: m.counts[c].sent.Load(), Recv: m.counts[c].recv.Load()}
	}
	return out
}

// meterReporter feeds libp2p's per-stream byte reports into a Meter. It
// counts everything that crosses a stream (all protocols, framing
// included); the Get methods are not used by relaymesh and report zero.
type meterReporter struct{ m *Meter }

var _ metrics.Reporter = meterReporter{}

func (r meterReporter) LogSentMessage(int64) {}
func (r meterReporter) LogRecvMessage(int64) {}
func (r meterReporter) LogSentMessageStream(n int64, _ protocol.ID, p peer.ID) {
	r.m.AddSent(p, int(n))
}
func (r meterReporter) LogRecvMessageStream(n int64, _ protocol.ID, p peer.ID) {
	r.m.AddRecv(p, int(n))
}
func (r meterReporter) GetBandwidthForPeer(peer.ID) metrics.Stats         { return metrics.Stats{} }
func (r meterReporter) GetBandwidthForProtocol(protocol.ID) metrics.Stats { return metrics.Stats{} }
func (r meterReporter) GetBandwidthTotals() metrics.Stats                 { return metrics.Stats{} }
func (r meterReporter) GetBandwidthByPeer() map[peer.ID]metrics.Stats {
	return map[peer.ID]metrics.Stats{}
}
func (r meterReporter) GetBandwidthByProtocol() map[protocol.ID]metrics.Stats {
	return map[protocol.ID]metrics.Stats{}
}
func (r meterReporter) Reset()             {}
func (r meterReporter) TrimIdle(time.Time) {}
