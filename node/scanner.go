package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node/scan"
)

// The patch scan (see node/scan): on a schedule (ScanInterval, each wait
// drawn within ±25 % of it, counted from the last scan so a restart does
// not rescan) and on a signed scan order. One scan runs at a time; a scan
// answers every scan order pending when it starts. Its report goes into
// the outbox in the same transaction that reports the orders done, so a
// crash loses neither and an outage only delays them.

// KV keys of the scanner.
const (
	keyScanReq  = "scanreq/"  // scanreq/<order id>: a scan order not answered yet
	keyScanLast = "scan/last" // when the last scan finished (RFC 3339)
)

// Scanner inventories the node; scan.Scan with Config.Scan is the real
// one.
type Scanner func(ctx context.Context) (*core.Inventory, error)

func (n *Node) scanner() Scanner {
	if n.cfg.Scanner != nil {
		return n.cfg.Scanner
	}
	c := n.cfg.Scan
	return func(ctx context.Context) (*core.Inventory, error) { return scan.Scan(ctx, c) }
}

// acceptScan stores a scan order, its sequence, the request to scan and
// its NOTIFIED report in one transaction and wakes the scanner. A scan
// order whose cancel order came first is reported CANCELLED and not run.
func (n *Node) acceptScan(env *core.Envelope, o *core.Order, cancelledBy string) {
	b, err := env.Encode()
	var stale []uint64
	if err == nil {
		stale, err = n.seqs.stale(o.KeyID, o.Seq)
	}
	if err == nil {
		err = n.commit(func(tx cache.KVTx) error {
			if err := tx.Set(keyOrder+o.ID, b); err != nil {
				return err
			}
			if err := recordSeq(tx, o.KeyID, o.Seq, stale); err != nil {
				return err
			}
			if cancelledBy != "" {
				return n.out.add(tx, core.Status{OrderID: o.ID, State: core.StateCancelled, ExitCode: -1, Detail: cancelledDetail(cancelledBy)})
			}
			if err := tx.Set(keyScanReq+o.ID, []byte(o.Expires.Format(time.RFC3339))); err != nil {
				return err
			}
			return n.out.add(tx, core.Status{OrderID: o.ID, State: core.StateNotified})
		})
	}
	if err != nil {
		n.log.Error("cannot store accepted scan order: it is lost until sent again", "order", o.ID, "err", err)
		return
	}
	signal(n.scanWake)
}

// cancelScanTx, inside a cancel order's transaction, drops the pending
// scan request target and reports it CANCELLED; false when none pends.
func (n *Node) cancelScanTx(tx cache.KVTx, target, cancelID string) (bool, error) {
	if _, err := tx.Get(keyScanReq + target); errors.Is(err, cache.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if err := tx.Delete(keyScanReq + target); err != nil {
		return false, err
	}
	return true, n.out.add(tx, core.Status{OrderID: target, State: core.StateCancelled, ExitCode: -1, Detail: "cancelled by order " + cancelID})
}

// pendingScans lists the scan orders not answered yet.
func (n *Node) pendingScans() ([]string, error) {
	var ids []string
	err := n.kv.Scan(keyScanReq, func(key string, _ []byte) error {
		ids = append(ids, key[len(keyScanReq):])
		return nil
	})
	return ids, err
}

// nextScanAt is when the periodic scan is due: the last scan plus the
// interval spread ±25 %, or, for a node that never scanned, within the
// first hour (at most the interval): a fleet that starts together does
// not scan together. Zero when periodic scans are off.
func (n *Node) nextScanAt(r func() float64) time.Time {
	iv := n.cfg.ScanInterval
	if iv <= 0 {
		return time.Time{}
	}
	if b, err := n.kv.Get(keyScanLast); err == nil {
		if last, err := time.Parse(time.RFC3339, string(b)); err == nil {
			return last.Add(time.Duration((0.75 + 0.5*r()) * float64(iv)))
		}
	}
	return n.cfg.now().Add(time.Duration(r() * float64(min(iv, time.Hour))))
}

// periodicScanPossible reports whether this host has dpkg's status file
// (a node on another OS has nothing to scan on a schedule).
func (n *Node) periodicScanPossible() bool {
	if n.cfg.Scanner != nil {
		return true
	}
	_, err := os.Stat(filepath.Join(n.cfg.Scan.DpkgAdmindir, "status"))
	return err == nil
}

// scanLoop runs scans until the node stops.
func (n *Node) scanLoop() {
	periodic := n.cfg.ScanInterval > 0 && n.periodicScanPossible()
	if n.cfg.ScanInterval > 0 && !periodic {
		n.log.Info("periodic scans off: no dpkg status on this host", "dpkg_admindir", n.cfg.Scan.DpkgAdmindir)
	}
	var due time.Time
	if periodic {
		due = n.nextScanAt(rand.Float64)
	}
	for {
		pending, err := n.pendingScans()
		if err != nil {
			n.log.Error("cannot read pending scan orders", "err", err)
		}
		now := n.cfg.now()
		if len(pending) > 0 || periodic && !now.Before(due) {
			n.runScan(pending)
			if periodic {
				due = n.nextScanAt(rand.Float64)
			}
			continue
		}
		wait := n.cfg.WaitStep
		if periodic {
			wait = min(wait, due.Sub(now))
		} else {
			wait = time.Hour
		}
		t := time.NewTimer(wait)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-n.scanWake:
			t.Stop()
		case <-t.C:
		}
	}
}

// runScan scans once and stores, in one transaction, the scan report and
// the answer to each pending scan order.
func (n *Node) runScan(orders []string) {
	start := n.cfg.now()
	inv, err := n.scanner()(n.ctx)
	if n.ctx.Err() != nil {
		return // stopping: the orders stay pending
	}
	if err != nil {
		inv = &core.Inventory{Manager: "dpkg", Error: err.Error()}
	}
	rep := core.ScanReport{Schema: core.ScanSchema, Time: n.cfg.now().UTC().Truncate(time.Second), Inventory: *inv}
	if len(orders) > 0 {
		rep.Order = orders[0]
	}
	fit(&rep)
	if err := standIn(&rep).Validate(); err != nil {
		// What the scan found cannot be sent as it is (a package name
		// beyond the caps): send the reason instead.
		rep.Inventory = core.Inventory{Manager: "dpkg", Error: "scan result not sendable: " + err.Error()}
	}
	st, detail := core.StateSuccess, fmt.Sprintf("scanned: %d updates (%d security), %d packages installed",
		len(rep.Updates), rep.SecurityCount(), rep.InstalledCount)
	if rep.Error != "" {
		st, detail = core.ErrExecute, "scan: "+rep.Error
	}
	err = n.commit(func(tx cache.KVTx) error {
		if err := n.out.addScan(tx, rep); err != nil {
			return err
		}
		for _, id := range orders {
			if _, err := tx.Get(keyScanReq + id); errors.Is(err, cache.ErrNotFound) {
				continue // cancelled meanwhile
			} else if err != nil {
				return err
			}
			if err := tx.Delete(keyScanReq + id); err != nil {
				return err
			}
			code := 0
			if st != core.StateSuccess {
				code = -1
			}
			if err := n.out.add(tx, core.Status{OrderID: id, State: st, ExitCode: code, Detail: detail}); err != nil {
				return err
			}
		}
		return tx.Set(keyScanLast, []byte(rep.Time.Format(time.RFC3339)))
	})
	if err != nil {
		n.log.Error("cannot store the scan report", "orders", len(orders), "err", err)
		// Not stored: the orders stay pending; wait before trying again.
		sleep(n.ctx, n.cfg.WaitStep)
		return
	}
	n.log.Info("scan done", "updates", len(rep.Updates), "security", rep.SecurityCount(), "installed", rep.InstalledCount,
		"orders", len(orders), "took", n.cfg.now().Sub(start).Round(time.Millisecond), "error", rep.Error)
}

// fit makes a report fit core.MaxScanBytes: it drops the inventory list
// first (the count stays), then as many updates as it must, saying so.
func fit(r *core.ScanReport) {
	size := func() int {
		b, err := json.Marshal(standIn(r)) // at least the canonical size
		if err != nil {
			return 0
		}
		return len(b)
	}
	if len(r.Installed) > core.MaxScanPackages || size() > core.MaxScanBytes {
		r.Installed, r.Truncated = nil, true
	}
	if len(r.Updates) > core.MaxScanUpdates {
		r.Updates = r.Updates[:core.MaxScanUpdates]
	}
	for len(r.Updates) > 0 && size() > core.MaxScanBytes {
		r.Updates = r.Updates[:len(r.Updates)/2]
		r.Error = fmt.Sprintf("more updates than fit in one report: %d listed", len(r.Updates))
	}
}

// standIn is r with a stand-in node and sequence (the outbox sets the
// real ones), to measure and check it before it is stored.
func standIn(r *core.ScanReport) *core.ScanReport {
	cp := *r
	cp.NodeID, cp.Seq = "size", 1
	return &cp
}
