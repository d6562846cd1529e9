package coordinator

import (
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// MaxBatch caps the reports of one status batch.
const MaxBatch = 5000

type checked struct {
	st   *core.Status
	scan *core.ScanReport
	err  error
}

// Intake verifies, dedupes and applies a batch of node-signed status
// reports, in order per node, and returns one outcome per report, with a
// receipt signed by the order key that names every report the coordinator
// is done with (nodes forget a report only on that receipt).
// Signatures are checked on all cores; the state change is written in as
// few synced transactions as the batch needs before the acks go back.
func (c *Coordinator) Intake(reports []*core.Envelope) *core.StatusAck {
	return c.signReceipt(reports, c.intake(reports))
}

// signReceipt adds to ack the signed receipt of the reports it settled.
func (c *Coordinator) signReceipt(reports []*core.Envelope, ack *core.StatusAck) *core.StatusAck {
	r := &core.Receipt{Schema: core.ReceiptSchema}
	for i, res := range ack.Results {
		if res == "" || reports[i] == nil {
			continue // not stored: the node sends it again
		}
		r.Entries = append(r.Entries, core.ReceiptEntry{Digest: core.ReportDigest(reports[i]), Result: res})
	}
	env, err := core.SignReceipt(r, c.orderKey)
	if err != nil {
		// Cannot happen (the entries are built above); without a receipt
		// the node keeps its reports and sends them again.
		c.log.Error("status intake: cannot sign the receipt", "err", err)
		return ack
	}
	ack.Receipt = env
	return ack
}

func (c *Coordinator) intake(reports []*core.Envelope) *core.StatusAck {
	ack := &core.StatusAck{Results: make([]string, len(reports)), Errors: make([]string, len(reports))}
	if len(reports) > MaxBatch {
		for i := range reports {
			ack.Results[i], ack.Errors[i] = core.AckRejected, "batch larger than 5000 reports"
		}
		c.counters.Malformed.Add(int64(len(reports)))
		return ack
	}
	res := c.verifyAll(reports)

	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	now := c.now().UTC()
	dirtyRows := map[string]*Row{}
	dirtyNodes := map[string]*NodeRecord{}
	dirtyScans := map[string]*ScanRecord{}
	node := func(id string) *NodeRecord {
		n := dirtyNodes[id]
		if n == nil {
			cp := *c.st.nodes[id]
			cp.Above = append([]uint64(nil), cp.Above...)
			n = &cp
		}
		return n
	}
	for i, r := range res {
		if r.err == nil && !c.stillEnrolledLocked(r) {
			// Deleted or revoked while its signature was checked.
			r.err = errNotEnrolledReport
			c.counters.NotEnrolled.Add(1)
		}
		if r.err != nil {
			ack.Results[i], ack.Errors[i] = core.AckRejected, r.err.Error()
			continue
		}
		if sc := r.scan; sc != nil {
			n := node(sc.NodeID)
			if n.seenSeq(sc.Seq) {
				ack.Results[i] = core.AckDuplicate
				c.counters.Duplicate.Add(1)
				continue
			}
			old := dirtyScans[sc.NodeID]
			if old == nil {
				old = c.st.scans[sc.NodeID]
			}
			if rec := applyScanLocked(old, sc, now); rec != nil {
				dirtyScans[sc.NodeID] = rec
			}
			n.markSeq(sc.Seq)
			n.LastSeen = now
			dirtyNodes[sc.NodeID] = n
			ack.Results[i] = core.AckApplied
			c.counters.Applied.Add(1)
			continue
		}
		s := r.st
		n := node(s.NodeID)
		if n.seenSeq(s.Seq) {
			ack.Results[i] = core.AckDuplicate
			c.counters.Duplicate.Add(1)
			continue
		}
		rows := c.st.rows[s.OrderID]
		row := rows[s.NodeID]
		if row == nil {
			ack.Results[i], ack.Errors[i] = core.AckRejected, "unknown order "+s.OrderID+" for this node"
			c.counters.UnknownOrder.Add(1)
			// The report is authentic: record its sequence, or the node's
			// watermark would stall below it for good.
			n.markSeq(s.Seq)
			dirtyNodes[s.NodeID] = n
			continue
		}
		if d := dirtyRows[s.OrderID+"/"+s.NodeID]; d != nil {
			row = d
		} else {
			cp := *row
			cp.Packages = cloneMap(row.Packages)
			row = &cp
		}
		applyReport(row, s, c.st.deps[s.OrderID], now)
		n.markSeq(s.Seq)
		n.LastSeen = now
		dirtyRows[s.OrderID+"/"+s.NodeID] = row
		dirtyNodes[s.NodeID] = n
		ack.Results[i] = core.AckApplied
		c.counters.Applied.Add(1)
	}
	if len(dirtyRows) == 0 && len(dirtyNodes) == 0 {
		return trimAck(ack)
	}
	pairs := make([]kvPair, 0, len(dirtyRows)+len(dirtyNodes)+len(dirtyScans))
	for _, r := range dirtyScans {
		pairs = append(pairs, scanPair(r))
	}
	for k, r := range dirtyRows {
		pairs = append(pairs, jsonPair(keyRow+k, r))
	}
	for id, n := range dirtyNodes {
		pairs = append(pairs, jsonPair(keyNode+id, n))
	}
	if err := c.st.write(pairs...); err != nil {
		// Nothing acked as applied: the node resends.
		c.log.Error("status intake: write failed", "err", err)
		for i := range ack.Results {
			if ack.Results[i] == core.AckApplied {
				ack.Results[i], ack.Errors[i] = "", "coordinator could not store the report; resend"
				c.counters.Applied.Add(-1)
			}
		}
		return trimAck(ack)
	}
	for k, r := range dirtyRows {
		dep, node := splitRowKey(k)
		c.st.rows[dep][node] = r
	}
	for id, n := range dirtyNodes {
		c.st.nodes[id] = n
	}
	for id, r := range dirtyScans {
		c.st.scans[id] = inMemory(r)
	}
	return trimAck(ack)
}

func trimAck(a *core.StatusAck) *core.StatusAck {
	for _, e := range a.Errors {
		if e != "" {
			return a
		}
	}
	a.Errors = nil
	return a
}

func splitRowKey(k string) (string, string) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:]
		}
	}
	return k, ""
}

func cloneMap(m map[string]PackageRow) map[string]PackageRow {
	if m == nil {
		return nil
	}
	out := make(map[string]PackageRow, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// verifyAll checks every report's signature against its node's key, on all
// cores.
func (c *Coordinator) verifyAll(reports []*core.Envelope) []checked {
	res := make([]checked, len(reports))
	workers := min(runtime.GOMAXPROCS(0), (len(reports)+63)/64)
	var wg sync.WaitGroup
	for w := range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(reports); i += max(workers, 1) {
				res[i] = c.verifyOne(reports[i])
			}
		}()
	}
	wg.Wait()
	return res
}

var (
	errNotEnrolledReport = errors.New("report from a node that is not enrolled")
	errRevokedReport     = errors.New("report from a revoked node")
)

func (c *Coordinator) verifyOne(e *core.Envelope) checked {
	if e != nil && e.Type == core.TypeScan {
		return c.verifyScan(e)
	}
	if e == nil || e.Type != core.TypeStatus {
		c.counters.Malformed.Add(1)
		return checked{err: core.ErrWrongType}
	}
	// The node ID is inside the payload; read it before trusting it, then
	// check the signature with that node's key.
	s, err := core.DecodeStatus(e.Payload)
	if err != nil {
		c.counters.Malformed.Add(1)
		return checked{err: err}
	}
	c.st.mu.RLock()
	pub := c.st.pubkeys[s.NodeID]
	c.st.mu.RUnlock()
	if pub == nil {
		c.counters.NotEnrolled.Add(1)
		if c.refuseRevoked(s.NodeID, "status report") {
			return checked{err: errRevokedReport}
		}
		return checked{err: errNotEnrolledReport}
	}
	if _, err := e.Open(core.TypeStatus, pub); err != nil {
		c.counters.BadSignature.Add(1)
		return checked{err: err}
	}
	return checked{st: s}
}

// applyReport folds one report into a row. Reports older than the row's
// latest (by node sequence) only fill in package results.
func applyReport(row *Row, s *core.Status, d *Deployment, now time.Time) {
	row.LastReport = now
	if s.State != core.StateWaiting && !s.Time.IsZero() && (row.Started.IsZero() || s.Time.Before(row.Started)) {
		row.Started = s.Time
	}
	if s.BytesFetched > row.BytesFetched {
		row.BytesFetched = s.BytesFetched
	}
	if s.Package != "" && s.State.Final() {
		if row.Packages == nil {
			row.Packages = map[string]PackageRow{}
		}
		row.Packages[s.Package] = PackageRow{State: s.State, ExitCode: s.ExitCode, Output: s.Output, Detail: s.Detail}
	}
	if s.Seq < row.LastSeq {
		return
	}
	row.LastSeq = s.Seq
	row.Updated = s.Time
	row.NoFeedback = false
	row.Output, row.Detail = s.Output, s.Detail
	row.ExitCode = s.ExitCode
	row.State = s.State
	// A package's final state is not the order's while others remain.
	if s.Package != "" && d != nil && len(d.Packages) > 1 {
		row.State, row.ExitCode = summarise(row.Packages, d.Packages)
	}
	switch {
	case !row.State.Final():
		row.Finished = time.Time{}
	case row.Finished.IsZero():
		row.Finished = s.Time
	}
}

// summarise gives a node's overall state over an order's packages: still
// INSTALLING while any package has no result, else the first error (an
// already installed package is none), else SUCCESS with the highest exit
// code, or ERR_ALREADY_SETUP when every package was installed before.
func summarise(got map[string]PackageRow, want []string) (core.State, int) {
	exit := 0
	var firstErr *PackageRow
	already := 0
	for _, p := range want {
		r, ok := got[p]
		if !ok {
			return core.StateInstalling, 0
		}
		if r.State == core.ErrAlreadySetup {
			already++
			continue
		}
		if r.State != core.StateSuccess && firstErr == nil {
			r := r
			firstErr = &r
		}
		exit = max(exit, r.ExitCode)
	}
	if firstErr != nil {
		return firstErr.State, firstErr.ExitCode
	}
	if already == len(want) {
		return core.ErrAlreadySetup, got[want[0]].ExitCode
	}
	return core.StateSuccess, exit
}
