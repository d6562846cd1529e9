package node

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node/runner"
)

// phase is where a job is. A job moves forward only:
// queued → downloading → downloaded → installing → done, or to failed or
// cancelled from any phase before installing.
type phase string

const (
	phaseQueued      phase = "queued"
	phaseDownloading phase = "downloading"
	phaseDownloaded  phase = "downloaded"
	phaseInstalling  phase = "installing"
	phaseDone        phase = "done"
	phaseFailed      phase = "failed"
	phaseCancelled   phase = "cancelled"
)

func (p phase) final() bool { return p == phaseDone || p == phaseFailed || p == phaseCancelled }

// before reports whether p comes before q on the way to done.
func (p phase) before(q phase) bool {
	order := map[phase]int{phaseQueued: 0, phaseDownloading: 1, phaseDownloaded: 2, phaseInstalling: 3}
	a, okA := order[p]
	b, okB := order[q]
	return okA && okB && a < b
}

// pkgResult is a package's final state, as reported.
type pkgResult struct {
	State    core.State `json:"state"`
	ExitCode int        `json:"exit_code"`
}

// jobRecord is the durable part of a job, at KV job/<orderID>.
type jobRecord struct {
	Order        string               `json:"order"`
	Priority     int                  `json:"priority"`
	Seq          uint64               `json:"seq"`
	Phase        phase                `json:"phase"`
	Attempts     int                  `json:"attempts,omitempty"`
	BytesFetched int64                `json:"bytes_fetched,omitempty"`
	Results      map[string]pkgResult `json:"results,omitempty"` // by package CID
	Detail       string               `json:"detail,omitempty"`
}

// job is one deploy order on this node.
type job struct {
	order  *core.Order
	ctx    context.Context
	cancel context.CancelFunc

	mu  sync.Mutex // guards rec and serialises its transitions
	rec jobRecord
}

func newJob(o *core.Order) *job {
	return &job{order: o, rec: jobRecord{Order: o.ID, Priority: o.Priority, Seq: o.Seq, Phase: phaseQueued}}
}

func (j *job) rank() rank { return rank{j.order.Priority, j.order.Seq} }

func (j *job) save(tx cache.KVTx) error { return saveRecord(tx, &j.rec) }

func saveRecord(tx cache.KVTx, r *jobRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Set(keyJob+r.Order, b)
}

// update applies fn to a copy of the job's record and, unless fn refuses
// (ok false), stores the copy and fn's reports in one transaction; only
// then does the job's record change. It reports whether it did.
func (n *Node) update(j *job, fn func(r *jobRecord) (reports []core.Status, ok bool)) (bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	r := j.rec
	r.Results = make(map[string]pkgResult, len(j.rec.Results))
	for k, v := range j.rec.Results {
		r.Results[k] = v
	}
	reports, ok := fn(&r)
	if !ok {
		return false, nil
	}
	err := n.commit(func(tx cache.KVTx) error {
		if err := saveRecord(tx, &r); err != nil {
			return err
		}
		for _, s := range reports {
			s.OrderID = r.Order
			if err := n.out.add(tx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		n.log.Error("cannot store job state", "order", r.Order, "phase", r.Phase, "err", err)
		return false, err
	}
	j.rec = r
	return true, nil
}

// startJob registers j and runs it on a node goroutine.
func (n *Node) startJob(j *job) {
	j.ctx, j.cancel = context.WithCancel(n.ctx)
	n.jobsMu.Lock()
	n.jobs[j.order.ID] = j
	n.jobsMu.Unlock()
	if !n.spawn(func() { n.runJob(j) }) {
		j.cancel()
	}
}

// forgetJob ends j's life in memory. A job that ended for good drops its
// pins (again: a cancel may have raced with a Pin of its download).
func (n *Node) forgetJob(j *job) {
	j.cancel()
	j.mu.Lock()
	final := j.rec.Phase.final()
	j.mu.Unlock()
	if final {
		n.unpin(j.order.ID)
	}
	n.jobsMu.Lock()
	if n.jobs[j.order.ID] == j {
		delete(n.jobs, j.order.ID)
	}
	n.jobsMu.Unlock()
}

// cancelJob cancels j unless it has begun installing or is finished.
func (n *Node) cancelJob(j *job, why string) {
	ok, _ := n.update(j, func(r *jobRecord) ([]core.Status, bool) {
		if r.Phase.final() || !r.Phase.before(phaseInstalling) {
			return nil, false
		}
		r.Phase, r.Detail = phaseCancelled, why
		return []core.Status{{State: core.StateCancelled, ExitCode: -1, Detail: why}}, true
	})
	if !ok {
		n.log.Info("cancel ignored: job is installing or finished", "order", j.order.ID)
		return
	}
	n.log.Info("job cancelled", "order", j.order.ID)
	j.cancel()
	n.unpin(j.order.ID)
}

func (n *Node) unpin(orderID string) {
	if err := n.store.Unpin(orderID); err != nil {
		n.log.Warn("unpin", "order", orderID, "err", err)
	}
}

// fail ends j with state st for the order (and the package, if named).
func (n *Node) fail(j *job, st core.State, pkg, detail string) {
	ok, _ := n.update(j, func(r *jobRecord) ([]core.Status, bool) {
		if r.Phase.final() || r.Phase == phaseInstalling {
			return nil, false
		}
		r.Phase, r.Detail = phaseFailed, detail
		return []core.Status{{Package: pkg, State: st, ExitCode: -1, Detail: detail}}, true
	})
	if ok {
		n.log.Warn("job failed", "order", j.order.ID, "state", st, "detail", detail)
		n.unpin(j.order.ID)
	}
}

// resumeJobs loads the jobs of the last run. A job that was installing is
// not run again: its packages without a result are reported ERR_ABORTED.
// Unfinished others start again where they were (fragments already cached
// are not fetched again).
func (n *Node) resumeJobs() error {
	// Orders may arrive (site gossip, pushes) while the node is starting:
	// intake starts their jobs under intakeMu. Holding it here, and
	// skipping jobs already running, makes each job start once (a job
	// taken in during a slow site join was run twice, the second time
	// ERR_ALREADY_SETUP).
	n.intakeMu.Lock()
	defer n.intakeMu.Unlock()
	var recs []jobRecord
	err := n.kv.Scan(keyJob, func(key string, val []byte) error {
		var r jobRecord
		if err := json.Unmarshal(val, &r); err != nil {
			n.log.Error("unreadable job record: skipped", "key", key, "err", err)
			return nil
		}
		if !r.Phase.final() {
			recs = append(recs, r)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("node: load jobs: %w", err)
	}
	for _, r := range recs {
		o, err := n.storedOrder(r.Order)
		if err != nil {
			n.log.Error("job without a readable order: dropped", "order", r.Order, "err", err)
			continue
		}
		n.jobsMu.Lock()
		running := n.jobs[r.Order] != nil
		n.jobsMu.Unlock()
		if running {
			continue
		}
		j := &job{order: o, rec: r}
		if r.Phase == phaseInstalling {
			n.abortInterrupted(j)
			continue
		}
		n.log.Info("resuming job", "order", r.Order, "phase", r.Phase)
		n.startJob(j)
	}
	return nil
}

func (n *Node) storedOrder(id string) (*core.Order, error) {
	b, err := n.kv.Get(keyOrder + id)
	if err != nil {
		return nil, err
	}
	env, err := core.DecodeEnvelope(b)
	if err != nil {
		return nil, err
	}
	return core.DecodeOrder(env.Payload) // verified when it was stored
}

// abortInterrupted closes a job whose install a restart interrupted.
func (n *Node) abortInterrupted(j *job) {
	why := "node restarted during install"
	if d := n.orphanDetail[j.order.ID]; d != "" {
		why += ": " + d
	}
	_, _ = n.update(j, func(r *jobRecord) ([]core.Status, bool) {
		var reports []core.Status
		for _, p := range j.order.Packages {
			if _, done := r.Results[p]; done {
				continue
			}
			r.Results[p] = pkgResult{State: core.ErrAborted, ExitCode: -1}
			reports = append(reports, core.Status{Package: p, State: core.ErrAborted, ExitCode: -1, Detail: why})
		}
		r.Phase, r.Detail = phaseDone, why
		return reports, true
	})
	n.log.Warn("install interrupted by a restart: not run again", "order", j.order.ID)
	n.unpin(j.order.ID)
}

// onResult records and reports one package's result from the installer.
func (n *Node) onResult(j *job, res runner.Result) {
	_, _ = n.update(j, func(r *jobRecord) ([]core.Status, bool) {
		r.Results[res.Package] = pkgResult{State: res.State, ExitCode: res.ExitCode}
		return []core.Status{{Package: res.Package, State: res.State, ExitCode: res.ExitCode,
			Output: res.Output, Detail: res.Detail}}, true
	})
}
