package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
)

// errStopScan ends a KV scan early.
var errStopScan = errors.New("node: stop scan")

// outbox keeps signed status reports in the KV until the coordinator
// acknowledges them in a receipt signed by a pinned order key (a relay
// passes the receipt back; it cannot forge one). A report is signed and
// stored, with its sequence number, in one KV transaction before anything
// tries to send it.
type outbox struct {
	kv     cache.KV
	priv   ed25519.PrivateKey
	keys   map[string]ed25519.PublicKey // pinned order keys: receipts' signers
	nodeID string
	now    func() time.Time
	log    *slog.Logger

	batch  int
	lo, hi time.Duration
	rand   func() float64 // jitter's source (tests set their own)

	wake chan struct{} // a report was added
	kick chan struct{} // the coordinator is back: retry now
}

func newOutbox(kv cache.KV, priv ed25519.PrivateKey, keys map[string]ed25519.PublicKey, nodeID string, cfg Config, log *slog.Logger) *outbox {
	return &outbox{
		kv: kv, priv: priv, keys: keys, nodeID: nodeID, now: cfg.now, log: log,
		batch: cfg.StatusBatch, lo: cfg.StatusBackoffMin, hi: cfg.StatusBackoffMax, rand: rand.Float64,
		wake: make(chan struct{}, 1), kick: make(chan struct{}, 1),
	}
}

// add assigns s the next node sequence number, signs it and stores it in
// the outbox, all inside tx.
func (o *outbox) add(tx cache.KVTx, s core.Status) error {
	seq, err := getUint(tx, keyStatusSeq)
	if err != nil {
		return err
	}
	seq++
	s.Schema, s.NodeID, s.Seq = core.StatusSchema, o.nodeID, seq
	if s.Time.IsZero() {
		s.Time = o.now().UTC()
	}
	if len(s.Output) > core.MaxOutputTail {
		s.Output = core.Tail([]byte(s.Output), core.MaxOutputTail)
	}
	if len(s.Detail) > 4096 {
		s.Detail = core.Tail([]byte(s.Detail), 4096)
	}
	env, err := core.SignStatus(&s, o.priv)
	if err != nil {
		return fmt.Errorf("node: sign status: %w", err)
	}
	b, err := env.Encode()
	if err != nil {
		return fmt.Errorf("node: encode status: %w", err)
	}
	if err := putUint(tx, keyStatusSeq, seq); err != nil {
		return err
	}
	return tx.Set(outboxKey(seq), b)
}

// addScan assigns r the next node sequence number (scan reports share the
// status sequence), signs it and stores it in the outbox, inside tx.
func (o *outbox) addScan(tx cache.KVTx, r core.ScanReport) error {
	seq, err := getUint(tx, keyStatusSeq)
	if err != nil {
		return err
	}
	seq++
	r.Schema, r.NodeID, r.Seq = core.ScanSchema, o.nodeID, seq
	env, err := core.SignScan(&r, o.priv)
	if err != nil {
		return fmt.Errorf("node: sign scan report: %w", err)
	}
	b, err := env.Encode()
	if err != nil {
		return fmt.Errorf("node: encode scan report: %w", err)
	}
	if err := putUint(tx, keyStatusSeq, seq); err != nil {
		return err
	}
	return tx.Set(outboxKey(seq), b)
}

// maxBatchPayload caps the report payload bytes of one batch (at least one
// report goes): scan reports are up to core.MaxScanBytes each, and the
// coordinator reads a batch of at most 10 MiB.
const maxBatchPayload = 4 << 20

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// pending returns up to o.batch of the oldest reports, and no more than
// maxBatchPayload bytes of them beyond the first.
func (o *outbox) pending() (keys []string, envs []*core.Envelope, err error) {
	size := 0
	err = o.kv.Scan(keyOutbox, func(key string, val []byte) error {
		env, err := core.DecodeEnvelope(val)
		if err != nil {
			// Our own write; cannot happen unless the disk lies. Drop it
			// rather than block every later report behind it.
			o.log.Error("dropping unreadable outbox entry", "key", key, "err", err)
			return o.kv.Delete(key)
		}
		if len(keys) > 0 && size+len(env.Payload) > maxBatchPayload {
			return errStopScan
		}
		size += len(env.Payload)
		keys, envs = append(keys, key), append(envs, env)
		if len(keys) >= o.batch {
			return errStopScan
		}
		return nil
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	return keys, envs, err
}

// sendFunc delivers a batch upward.
type sendFunc func(ctx context.Context, b *core.StatusBatch) (*core.StatusAck, error)

// run sends the outbox until ctx ends: batches of the oldest reports,
// removing those acknowledged, and backing off (lo, 2·lo, … hi, each
// jittered to between half and all of it) after a failure. A new report
// ends an idle wait; only kick ends a backoff early.
func (o *outbox) run(ctx context.Context, send sendFunc) {
	failures := 0
	for {
		keys, envs, err := o.pending()
		if err == nil && len(envs) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-o.wake:
			case <-o.kick:
			}
			continue
		}
		if err == nil {
			var ack *core.StatusAck
			ack, err = send(ctx, &core.StatusBatch{Reports: envs})
			if err == nil {
				err = o.settle(keys, envs, ack)
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			continue
		}
		failures++
		d := jitter(backoff(o.lo, o.hi, failures), o.rand)
		o.log.Debug("status delivery failed", "reports", len(envs), "retry_in", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-o.kick:
			t.Stop()
			failures = 0
		}
	}
}

// receipted returns, per report of envs, the outcome the coordinator's
// signed receipt in ack gives it, "" for a report the receipt does not
// name. The unsigned Results are not trusted: whoever relayed the batch
// could have written them.
func (o *outbox) receipted(envs []*core.Envelope, ack *core.StatusAck) ([]string, error) {
	if ack == nil || ack.Receipt == nil {
		return nil, fmt.Errorf("%w: the ack carries no receipt signed by the coordinator", ErrUnsignedAck)
	}
	r, err := core.OpenReceipt(ack.Receipt, o.keys)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsignedAck, err)
	}
	got := make(map[string]string, len(r.Entries))
	for _, e := range r.Entries {
		got[string(e.Digest)] = e.Result
	}
	out := make([]string, len(envs))
	for i, env := range envs {
		out[i] = got[string(core.ReportDigest(env))]
	}
	return out, nil
}

// settle removes the reports the coordinator's signed receipt says it is
// done with, and keeps the rest for the next attempt.
func (o *outbox) settle(keys []string, envs []*core.Envelope, ack *core.StatusAck) error {
	results, err := o.receipted(envs, ack)
	if err != nil {
		return err
	}
	var done []string
	var unknown int
	for i, r := range results {
		switch r {
		case core.AckApplied, core.AckDuplicate:
			done = append(done, keys[i])
		case core.AckRejected:
			why := ""
			if i < len(ack.Errors) {
				why = ack.Errors[i]
			}
			o.log.Warn("coordinator rejected a status report", "key", keys[i], "reason", why)
			done = append(done, keys[i])
		default:
			unknown++
		}
	}
	if len(done) > 0 {
		if err := o.kv.Update(func(tx cache.KVTx) error {
			for _, k := range done {
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if unknown > 0 {
		return fmt.Errorf("node: status ack: the coordinator's receipt does not name %d of %d reports (kept, sent again)", unknown, len(keys))
	}
	return nil
}
