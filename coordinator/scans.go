package coordinator

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// Scans: a scan order is a Deployment of kind "scan" (it has rows, is
// delivered, caught up on sync and timed out like any order); what each
// node found arrives as a node-signed scan report (core.TypeScan) in the
// status stream and is kept, latest per node, under sc/<node id>.

// DeployKindScan marks a Deployment that is a scan order.
const DeployKindScan = "scan"

const keyScan = "sc/" // sc/<node id> → ScanRecord

// maxScanHistory is how many earlier scans a node's record summarises.
const maxScanHistory = 30

// ScanRecord is a node's latest scan, with when it arrived and a summary
// of the scans before it.
type ScanRecord struct {
	Node     string           `json:"node"`
	Received time.Time        `json:"received"`
	Report   *core.ScanReport `json:"report"`
	History  []ScanSummary    `json:"history,omitempty"`
}

// ScanSummary is one scan in a node's history.
type ScanSummary struct {
	Time     time.Time `json:"time"`
	Received time.Time `json:"received"`
	Updates  int       `json:"updates"`
	Security int       `json:"security"`
	Error    string    `json:"error,omitempty"`
}

func summary(r *ScanRecord) ScanSummary {
	return ScanSummary{Time: r.Report.Time, Received: r.Received, Updates: len(r.Report.Updates),
		Security: r.Report.SecurityCount(), Error: r.Report.Error}
}

// ScanRequest asks the targets to scan now; the selectors are those of a
// deployment.
type ScanRequest struct {
	Nodes   []string `json:"nodes,omitempty"`
	Sites   []string `json:"sites,omitempty"`
	Tags    []string `json:"tags,omitempty"`
	OS      string   `json:"os,omitempty"`
	All     bool     `json:"all,omitempty"`
	Expires string   `json:"expires,omitempty"` // default 24h
}

// CreateScan signs a scan order for the targets and hands it to the mesh;
// its progress is a deployment's (deploy show ID).
func (c *Coordinator) CreateScan(req ScanRequest) (*DeploymentView, error) {
	now := c.now().UTC().Truncate(time.Second)
	ttl := DefaultOrderLifetime
	if req.Expires != "" {
		d, err := time.ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: expires %q: want a positive duration such as 24h", ErrBadRequest, req.Expires)
		}
		ttl = d
	}
	if max := c.cfg.maxOrderLifetime(); ttl > max {
		return nil, fmt.Errorf("%w: expires %s: above the coordinator's maximum order lifetime of %s", ErrBadRequest, ttl, max)
	}
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	targets, err := c.resolveLocked(DeployRequest{Nodes: req.Nodes, Sites: req.Sites, Tags: req.Tags, OS: req.OS, All: req.All})
	if err != nil {
		return nil, err
	}
	id := newID("s")
	seq := c.st.seq + 1
	o := &core.Order{
		Schema: core.OrderSchema, Kind: core.KindScan, ID: id, Seq: seq,
		IssuedAt: now, NotBefore: now, Expires: now.Add(ttl).Truncate(time.Second), Targets: targets, Priority: 5,
	}
	env, err := core.SignOrder(o, c.orderKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	d := &Deployment{
		ID: id, Kind: DeployKindScan, Packages: []string{}, Targets: targets, Seq: seq, Order: env, Priority: o.Priority,
		NotBefore: o.NotBefore, Expires: o.Expires, Created: now,
	}
	if err := c.st.write(jsonPair(keyDeploy+id, d), seqPair(seq)); err != nil {
		return nil, err
	}
	c.adoptOrderLocked(d, now)
	c.log.Info("scan order created", "id", id, "seq", seq, "targets", len(targets))
	c.dispatchLocked(env, targets)
	return c.viewLocked(d, false), nil
}

// verifyScan checks a scan report envelope against its node's key.
func (c *Coordinator) verifyScan(e *core.Envelope) checked {
	r, err := core.DecodeScan(e.Payload)
	if err != nil {
		c.counters.Malformed.Add(1)
		return checked{err: err}
	}
	c.st.mu.RLock()
	pub := c.st.pubkeys[r.NodeID]
	c.st.mu.RUnlock()
	if pub == nil {
		c.counters.NotEnrolled.Add(1)
		return checked{err: errNotEnrolledReport}
	}
	if _, err := e.Open(core.TypeScan, pub); err != nil {
		c.counters.BadSignature.Add(1)
		return checked{err: err}
	}
	return checked{scan: r}
}

// applyScanLocked folds a scan report into the node's record: a report
// newer (by scan time, then sequence) than the kept one replaces it and
// the kept one joins the history; an older one (delivered late) changes
// nothing, and nil is returned.
func applyScanLocked(old *ScanRecord, r *core.ScanReport, now time.Time) *ScanRecord {
	rec := &ScanRecord{Node: r.NodeID, Received: now, Report: r}
	if old == nil {
		return rec
	}
	if !(r.Time.After(old.Report.Time) || r.Time.Equal(old.Report.Time) && r.Seq > old.Report.Seq) {
		return nil
	}
	rec.History = append(append([]ScanSummary(nil), old.History...), summary(old))
	if len(rec.History) > maxScanHistory {
		rec.History = rec.History[len(rec.History)-maxScanHistory:]
	}
	return rec
}

// scanPair is the record's KV pair: the whole report, inventory included.
func scanPair(r *ScanRecord) kvPair { return jsonPair(keyScan+r.Node, r) }

// inMemory is r as the coordinator keeps it in memory: without the
// inventory list (the count stays), which only the disk holds.
func inMemory(r *ScanRecord) *ScanRecord {
	cp := *r
	rep := *r.Report
	rep.Installed = nil
	cp.Report = &rep
	return &cp
}

func loadScan(v []byte) (*ScanRecord, error) {
	var r ScanRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, err
	}
	if r.Report == nil || r.Node == "" {
		return nil, fmt.Errorf("scan record without a report")
	}
	return inMemory(&r), nil
}

// Inventory returns a node's latest full scan, inventory included, read
// from disk.
func (c *Coordinator) Inventory(node string) (*ScanRecord, error) {
	nv, err := c.Node(node)
	if err != nil {
		return nil, err
	}
	b, err := c.st.kv.Get(keyScan + nv.ID)
	if err != nil {
		return nil, fmt.Errorf("%w: node %s has not reported a scan yet: relaymesh scan --node %s", ErrNotFound, nv.Name, nv.Name)
	}
	var r ScanRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("coordinator: scan record of %s: %w", nv.ID, err)
	}
	return &r, nil
}
