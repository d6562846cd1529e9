package coordinator

import (
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// NodeRecord is an enrolled node.
type NodeRecord struct {
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Site       string        `json:"site"`
	Tags       []string      `json:"tags,omitempty"`
	OS         string        `json:"os"`
	Arch       string        `json:"arch"`
	Version    string        `json:"version"`
	Addrs      []string      `json:"addrs,omitempty"`
	GossipAddr string        `json:"gossip_addr,omitempty"`
	Relay      bool          `json:"relay,omitempty"`
	Traffic    *core.Traffic `json:"traffic,omitempty"` // as last reported: since the node started
	// TrafficTotal sums the growth of Traffic over every report since
	// enrollment, so a node's restart (its counters start again at zero)
	// does not make it, or a site's sum, go down.
	TrafficTotal *core.Traffic `json:"traffic_total,omitempty"`
	// Unreachable are the site members this node last said it cannot
	// connect to.
	Unreachable []string `json:"unreachable,omitempty"`
	// GossipKeys are the fingerprints of the gossip keyring the node last
	// said it holds, primary first (nil: a node older than rotation).
	GossipKeys []string  `json:"gossip_keys,omitempty"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	// ClockOffset is the node's clock minus the coordinator's, measured
	// at its last sync; ClockBound is the error of that estimate (half
	// the previous sync's round trip), 0 when the node sent no round trip
	// (then the offset may be up to one network delay too low).
	ClockOffset time.Duration `json:"clock_offset,omitempty"`
	ClockBound  time.Duration `json:"clock_bound,omitempty"`
	ClockKnown  bool          `json:"clock_known,omitempty"`
	// Status report sequences applied: all up to Watermark, plus Above.
	Watermark uint64   `json:"watermark,omitempty"`
	Above     []uint64 `json:"above,omitempty"`
}

// TokenRecord is a join token; only its hash is stored.
type TokenRecord struct {
	Hash    string    `json:"hash"`
	Site    string    `json:"site"`
	Tags    []string  `json:"tags,omitempty"`
	Uses    int       `json:"uses"` // 0 = unlimited
	Used    int       `json:"used"`
	Expires time.Time `json:"expires"`
	Created time.Time `json:"created"`
}

// PackageRecord is a published package.
type PackageRecord struct {
	ID       string         `json:"id"`
	Manifest *core.Manifest `json:"manifest"`
	Created  time.Time      `json:"created"`
}

// Deployment is one signed order and what became of it.
type Deployment struct {
	ID string `json:"id"`
	// Kind is "" for a deployment, DeployKindScan for a scan order,
	// DeployKindGossipKey for a step of a gossip key rotation.
	Kind string `json:"kind,omitempty"`
	// Uninstall: the order runs the packages' uninstall commands.
	Uninstall   bool           `json:"uninstall,omitempty"`
	Packages    []string       `json:"packages"`
	Targets     []string       `json:"targets"`
	Seq         uint64         `json:"seq"`
	Order       *core.Envelope `json:"order"`
	Priority    int            `json:"priority"`
	NotBefore   time.Time      `json:"not_before"`
	Expires     time.Time      `json:"expires"`
	Timeout     int64          `json:"timeout_s,omitempty"`
	Window      string         `json:"window,omitempty"`
	Created     time.Time      `json:"created"`
	Cancelled   bool           `json:"cancelled,omitempty"`
	CancelSeq   uint64         `json:"cancel_seq,omitempty"`
	CancelOrder *core.Envelope `json:"cancel_order,omitempty"`
	// Unaffected nodes were removed by "deploy validate --all" before they
	// were notified; they are not sent the order.
	Unaffected []string `json:"unaffected,omitempty"`
}

// Row is one node's state for one deployment.
type Row struct {
	Node         string                `json:"node"`
	State        core.State            `json:"state"`
	ExitCode     int                   `json:"exit_code"`
	Output       string                `json:"output,omitempty"`
	Detail       string                `json:"detail,omitempty"`
	Updated      time.Time             `json:"updated"`
	LastReport   time.Time             `json:"last_report,omitempty"`
	LastSeq      uint64                `json:"last_seq,omitempty"`
	BytesFetched int64                 `json:"bytes_fetched,omitempty"`
	Packages     map[string]PackageRow `json:"packages,omitempty"`
	Validated    bool                  `json:"validated,omitempty"`
	NoFeedback   bool                  `json:"no_feedback,omitempty"`
	// Started is the node's time of its first report past
	// WAITING_NOTIFICATION, Finished that of the report that made the row
	// final (both on the node's clock, so their difference is free of clock
	// skew); ValidatedAt is when deploy validate archived the row.
	Started     time.Time `json:"started,omitzero"`
	Finished    time.Time `json:"finished,omitzero"`
	ValidatedAt time.Time `json:"validated_at,omitzero"`
}

// PackageRow is a node's final result for one package of an order.
type PackageRow struct {
	State    core.State `json:"state"`
	ExitCode int        `json:"exit_code"`
	Output   string     `json:"output,omitempty"`
	Detail   string     `json:"detail,omitempty"`
}

// Deployment states.
const (
	DeployScheduled  = "SCHEDULED"
	DeployRunning    = "RUNNING"
	DeployIncomplete = "INCOMPLETE"
	DeployCompleted  = "COMPLETED"
	DeployCancelled  = "CANCELLED"
	// DeployDryRun is only the state of the answer to a dry run: nothing
	// of it was signed or stored.
	DeployDryRun = "DRY_RUN"
)

// seenSeq reports whether status sequence seq was applied for n.
func (n *NodeRecord) seenSeq(seq uint64) bool {
	if seq <= n.Watermark {
		return true
	}
	for _, s := range n.Above {
		if s == seq {
			return true
		}
	}
	return false
}

// markSeq records seq as applied and folds contiguous ones into Watermark.
func (n *NodeRecord) markSeq(seq uint64) {
	if seq == n.Watermark+1 {
		n.Watermark = seq
	} else {
		n.Above = append(n.Above, seq)
	}
	for changed := true; changed; {
		changed = false
		for i, s := range n.Above {
			if s == n.Watermark+1 {
				n.Watermark = s
				n.Above = append(n.Above[:i], n.Above[i+1:]...)
				changed = true
				break
			}
		}
	}
	// A node that lost reports forever (it never does: the outbox is
	// durable) would grow Above without end; cap it.
	if len(n.Above) > 4096 {
		n.Above = n.Above[len(n.Above)-4096:]
	}
}
