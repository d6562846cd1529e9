package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
)

// orderIDRe is core's order ID syntax: a report can only name such an ID.
var orderIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// peekOrderID reads an order's ID from a payload without trusting it, to
// name the order in a refusal report; "" when it cannot be read.
func peekOrderID(payload []byte) string {
	var p struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(payload, &p) != nil || !orderIDRe.MatchString(p.ID) {
		return ""
	}
	return p.ID
}

// refusalState maps a Verifier error to the state reported for the
// refused order. ok is false for refusals that are not reported: an order
// issued in the (node's) future may become valid when the clocks agree,
// and a storage failure says nothing about the order.
func refusalState(err error) (st core.State, ok bool) {
	switch {
	case errors.Is(err, core.ErrNotYetValid):
		return "", false
	case errors.Is(err, core.ErrBadSignature), errors.Is(err, core.ErrUnknownKey), errors.Is(err, core.ErrWrongType):
		return core.ErrBadSigSt, true
	case errors.Is(err, core.ErrExpired):
		return core.ErrExpiredSt, true
	case errors.Is(err, core.ErrReplay):
		return core.ErrReplaySt, true
	case errors.Is(err, core.ErrNotAddressed), errors.Is(err, core.ErrBadOrder),
		errors.Is(err, core.ErrBadEnvelope), errors.Is(err, core.ErrNotCanonical):
		return core.ErrBadID, true
	}
	return "", false
}

func envelopeDigest(e *core.Envelope) string {
	h := sha256.New()
	h.Write([]byte(e.Type + "\x00" + e.KeyID + "\x00"))
	h.Write(e.Payload)
	h.Write(e.Sig)
	return hex.EncodeToString(h.Sum(nil))
}

// intake takes one signed order in, from a push or a sync, and reports
// whether it was accepted now. An order already accepted (same ID, same
// payload) is ignored, as is one refused before (same envelope): that is
// redelivery, not news. Everything else is verified; an accepted order is
// stored and acted on, a refused one is reported, when its ID can be
// read, and never acted on.
func (n *Node) intake(env *core.Envelope) bool {
	n.intakeMu.Lock()
	defer n.intakeMu.Unlock()
	id := peekOrderID(env.Payload)
	var known *core.Envelope
	cancelledBy := ""
	if id != "" {
		if b, err := n.kv.Get(keyOrder + id); err == nil {
			if known, err = core.DecodeEnvelope(b); err == nil && bytes.Equal(known.Payload, env.Payload) {
				return false
			}
		}
		if b, err := n.kv.Get(keyRefused + id); err == nil && string(b) == envelopeDigest(env) {
			return false
		}
		switch b, err := n.kv.Get(keyCancelled + id); {
		case err == nil:
			cancelledBy = string(b)
		case !errors.Is(err, cache.ErrNotFound):
			// Cannot tell whether it was cancelled: not taken in now.
			n.log.Error("cannot read the cancel record: order not taken in now", "order", id, "err", err)
			return false
		}
	}
	// Check, then record the sequence in the same transaction that stores
	// the order (acceptDeploy, acceptCancel): a crash can then neither
	// forget the sequence of an order that was acted on nor lose an order
	// whose sequence was recorded. intakeMu makes check-then-write atomic.
	// Orders may arrive in any order: Check accepts a sequence below the
	// highest when it is inside the replay window and was not accepted
	// before (core.ReplayWindow).
	o, err := n.verifier.Check(env)
	if err != nil {
		n.refuse(env, id, known != nil, cancelledBy, err)
		return false
	}
	n.log.Info("order accepted", "order", o.ID, "kind", o.Kind, "seq", o.Seq, "priority", o.Priority)
	switch {
	case o.Kind == core.KindDeploy && cancelledBy != "":
		// Its cancel order came first (the push of this one was lost, or a
		// relay or peer held it back): never run.
		n.acceptCancelledDeploy(env, o, cancelledBy)
	case o.Kind == core.KindDeploy:
		n.acceptDeploy(env, o)
	case o.Kind == core.KindCancel:
		n.acceptCancel(env, o)
	case o.Kind == core.KindScan:
		n.acceptScan(env, o, cancelledBy)
	case o.Kind == core.KindGossipKey:
		n.acceptGossipKey(env, o)
	}
	return true
}

// refuse reports a refused order. A refusal naming an order this node
// accepted earlier (a tampered or replayed copy of it), or one a cancel
// order it accepted names (cancelledBy), is only logged: a report would
// overwrite the real order's state at the coordinator, CANCELLED for the
// latter.
func (n *Node) refuse(env *core.Envelope, id string, knownID bool, cancelledBy string, err error) {
	st, ok := refusalState(err)
	log := n.log.With("order", id, "err", err)
	if errors.Is(err, core.ErrNotYetValid) && id != "" && !knownID && cancelledBy == "" {
		n.reportNotYetValid(env, id, err)
		return
	}
	switch {
	case !ok:
		log.Warn("order not accepted now")
		return
	case id == "":
		log.Warn("order refused; its ID is unreadable, not reported")
		return
	case knownID:
		log.Warn("order refused: a different copy of an order accepted before; not reported", "state", st)
		return
	case cancelledBy != "":
		log.Warn("order refused: it was cancelled before; not reported", "state", st, "cancelled_by", cancelledBy)
		return
	}
	log.Warn("order refused", "state", st)
	err2 := n.commit(func(tx cache.KVTx) error {
		if err := tx.Set(keyRefused+id, []byte(envelopeDigest(env))); err != nil {
			return err
		}
		return n.out.add(tx, core.Status{OrderID: id, State: st, ExitCode: -1, Detail: err.Error()})
	})
	if err2 != nil {
		n.log.Error("cannot store refusal report", "order", id, "err", err2)
	}
}

// reportNotYetValid tells the coordinator, once per order envelope, that
// this node's clock is behind the order's issue time beyond the allowed
// skew. The report is WAITING_NOTIFICATION, not an error: nothing is
// recorded as refused, so the order is taken in on a later delivery once
// the clocks agree, and the coordinator keeps delivering it.
func (n *Node) reportNotYetValid(env *core.Envelope, id string, err error) {
	d := envelopeDigest(env)
	if n.skewSaid[id] == d {
		return
	}
	detail := fmt.Sprintf("not yet valid on this node: %v (node clock %s; allowed skew %s): check the node's clock (NTP); the order is taken in when it becomes valid",
		err, n.cfg.now().UTC().Format(time.RFC3339), n.verifier.MaxSkewOrDefault())
	n.log.Warn("order not yet valid: node clock behind; reported", "order", id, "err", err)
	err2 := n.commit(func(tx cache.KVTx) error {
		return n.out.add(tx, core.Status{OrderID: id, State: core.StateWaiting, ExitCode: -1, Detail: detail})
	})
	if err2 != nil {
		n.log.Error("cannot store the not-yet-valid report", "order", id, "err", err2)
		return
	}
	if n.skewSaid == nil {
		n.skewSaid = map[string]string{}
	}
	n.skewSaid[id] = d
}

// acceptDeploy stores the order, its sequence and its new job and reports
// NOTIFIED, in one transaction, then starts the job.
func (n *Node) acceptDeploy(env *core.Envelope, o *core.Order) {
	b, err := env.Encode()
	var stale []uint64
	if err == nil {
		stale, err = n.seqs.stale(o.KeyID, o.Seq)
	}
	if err == nil {
		j := newJob(o)
		err = n.commit(func(tx cache.KVTx) error {
			if err := tx.Set(keyOrder+o.ID, b); err != nil {
				return err
			}
			if err := recordSeq(tx, o.KeyID, o.Seq, stale); err != nil {
				return err
			}
			if err := j.save(tx); err != nil {
				return err
			}
			return n.out.add(tx, core.Status{OrderID: o.ID, State: core.StateNotified})
		})
		if err == nil {
			n.startJob(j)
			return
		}
	}
	n.log.Error("cannot store accepted order: it is lost until redeployed", "order", o.ID, "err", err)
}

// cancelledDetail is the detail of the CANCELLED report for an order whose
// cancel order this node accepted before the order itself.
func cancelledDetail(cancelID string) string {
	return "cancelled by order " + cancelID + " before it arrived"
}

// acceptCancelledDeploy takes in a deploy order that a cancel order this
// node accepted earlier names: it records the order's sequence like any
// accepted order's (a replay of it is still a replay), stores it with a
// cancelled job and reports CANCELLED, in one transaction, and never
// starts a job. A job record under its ID (a different copy of an order
// accepted before) is left alone.
func (n *Node) acceptCancelledDeploy(env *core.Envelope, o *core.Order, cancelID string) {
	b, err := env.Encode()
	var stale []uint64
	if err == nil {
		stale, err = n.seqs.stale(o.KeyID, o.Seq)
	}
	if err == nil {
		why := cancelledDetail(cancelID)
		err = n.commit(func(tx cache.KVTx) error {
			if err := recordSeq(tx, o.KeyID, o.Seq, stale); err != nil {
				return err
			}
			if _, err := tx.Get(keyJob + o.ID); !errors.Is(err, cache.ErrNotFound) {
				return err // nil: a job exists; left alone
			}
			if err := tx.Set(keyOrder+o.ID, b); err != nil {
				return err
			}
			j := newJob(o)
			j.rec.Phase, j.rec.Detail = phaseCancelled, why
			if err := j.save(tx); err != nil {
				return err
			}
			return n.out.add(tx, core.Status{OrderID: o.ID, State: core.StateCancelled, ExitCode: -1, Detail: why})
		})
	}
	if err != nil {
		n.log.Error("cannot store a cancelled order", "order", o.ID, "cancelled_by", cancelID, "err", err)
		return
	}
	n.log.Info("order cancelled before it arrived: not run", "order", o.ID, "cancelled_by", cancelID)
}

// acceptCancel stores a cancel order, with the record that its target is
// cancelled (cancelled/<target>), and cancels the target if the target
// has not begun installing; an installing or finished job is left alone.
// A target this node has not taken in yet (its push was lost, or a relay
// holds it back) is reported CANCELLED now, and is never run if it comes
// later (acceptCancelledDeploy).
func (n *Node) acceptCancel(env *core.Envelope, o *core.Order) {
	b, err := env.Encode()
	var stale []uint64
	if err == nil {
		stale, err = n.seqs.stale(o.KeyID, o.Seq)
	}
	unseen := false
	if err == nil {
		err = n.commit(func(tx cache.KVTx) error {
			if err := tx.Set(keyOrder+o.ID, b); err != nil {
				return err
			}
			if err := recordSeq(tx, o.KeyID, o.Seq, stale); err != nil {
				return err
			}
			if err := tx.Set(keyCancelled+o.Cancels, []byte(o.ID)); err != nil {
				return err
			}
			unseen = false
			if ok, err := n.cancelScanTx(tx, o.Cancels, o.ID); ok || err != nil {
				return err // a pending scan order: reported CANCELLED
			}
			for _, k := range []string{keyJob + o.Cancels, keyOrder + o.Cancels} {
				if _, err := tx.Get(k); !errors.Is(err, cache.ErrNotFound) {
					return err // nil: the target was taken in
				}
			}
			unseen = true
			return n.out.add(tx, core.Status{OrderID: o.Cancels, State: core.StateCancelled, ExitCode: -1, Detail: cancelledDetail(o.ID)})
		})
	}
	if err != nil {
		n.log.Error("cannot store cancel order: not acted on", "order", o.ID, "err", err)
		return
	}
	if unseen {
		n.log.Info("cancel order names an order not taken in here: it will not run", "order", o.ID, "cancels", o.Cancels)
		return
	}
	n.jobsMu.Lock()
	j := n.jobs[o.Cancels]
	n.jobsMu.Unlock()
	if j == nil {
		n.log.Info("cancel order names no pending job here", "order", o.ID, "cancels", o.Cancels)
		return
	}
	n.cancelJob(j, "cancelled by order "+o.ID)
}
