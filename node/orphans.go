package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/node/install"
)

// keyRunning holds, per order, the install command that runs now:
// running/<orderID>, a runningRecord. It is written once the command
// started, before the node waits for it, and replaced by the next command
// of the order; the node reads it at start (reapOrphans).
const keyRunning = "running/"

// runningRecord names an install command's process group for good (PID and
// start time: a PID reused after a crash has another start time) and its
// temp dir.
type runningRecord struct {
	Order string `json:"order"`
	Pkg   string `json:"pkg"`
	Tmp   string `json:"tmp,omitempty"`
	PGID  int    `json:"pgid"`
	Start uint64 `json:"start"`
}

// orphanWait bounds how long reapOrphans waits for a killed group to go.
const orphanWait = 10 * time.Second

// recordStarted is runner.Config.Started: it stores the command's record,
// synced, before the runner waits for the command.
func (n *Node) recordStarted(orderID, pkgID, tmp string, pgid int) error {
	start, err := install.StartTime(pgid)
	if err != nil {
		// It exited already (or this is not Linux): a zero start time
		// never matches, so a restart will not touch the PID.
		n.log.Debug("no start time for install command", "pgid", pgid, "err", err)
	}
	b, err := json.Marshal(runningRecord{Order: orderID, Pkg: pkgID, Tmp: tmp, PGID: pgid, Start: start})
	if err != nil {
		return err
	}
	return n.kv.Set(keyRunning+orderID, b)
}

// reapOrphans runs at start, before jobs resume. For each install command
// the last run recorded, it kills the command's process group if it still
// runs (an install that outlived the node that watched it: its result
// cannot be known, so it is ended, not waited for) and removes its temp
// dir; the detail for the order's ERR_ABORTED report goes into
// n.orphanDetail. It then removes every leftover relaymesh-* temp dir when
// the temp dir is the node's own (DIR/tmp; a shared one may hold other
// nodes' live installs).
func (n *Node) reapOrphans() error {
	var recs []runningRecord
	err := n.kv.Scan(keyRunning, func(key string, val []byte) error {
		var r runningRecord
		if err := json.Unmarshal(val, &r); err != nil {
			n.log.Error("unreadable install record: dropped", "key", key, "err", err)
		} else {
			recs = append(recs, r)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("node: load install records: %w", err)
	}
	n.orphanDetail = map[string]string{}
	for _, r := range recs {
		detail := fmt.Sprintf("its command (process group %d) had ended; its exit status is unknown", r.PGID)
		killed, err := install.KillGroup(r.PGID, r.Start)
		switch {
		case err != nil:
			detail = fmt.Sprintf("its command (process group %d) still runs and could not be killed: %v", r.PGID, err)
			n.log.Error("cannot kill orphaned install", "order", r.Order, "pgid", r.PGID, "err", err)
		case killed:
			detail = fmt.Sprintf("its command (process group %d) was still running and was killed", r.PGID)
			n.log.Warn("killed orphaned install", "order", r.Order, "package", r.Pkg, "pgid", r.PGID)
			n.waitGone(r)
		}
		if r.Tmp != "" {
			if err := install.Cleanup(r.Tmp); err != nil {
				detail += "; " + err.Error()
				n.log.Error("cannot remove orphaned temp dir", "dir", r.Tmp, "err", err)
			}
		}
		n.orphanDetail[r.Order] = detail
		if err := n.kv.Delete(keyRunning + r.Order); err != nil && !errors.Is(err, cache.ErrNotFound) {
			return fmt.Errorf("node: drop install record: %w", err)
		}
	}
	if n.cfg.TempDir == "" {
		n.sweepTemp(n.cfg.tempDir())
	}
	return nil
}

// waitGone waits, up to orphanWait, for a killed group to have no member
// left, so that its temp dir is not written to while it is removed.
func (n *Node) waitGone(r runningRecord) {
	deadline := time.Now().Add(orphanWait)
	for install.GroupRunning(r.PGID, r.Start) {
		if time.Now().After(deadline) {
			n.log.Error("killed install group still has members", "pgid", r.PGID, "waited", orphanWait)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sweepTemp removes the relaymesh-* dirs under dir: no install runs yet, so
// any there is left from a crash.
func (n *Node) sweepTemp(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			n.log.Warn("cannot list temp dir", "dir", dir, "err", err)
		}
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "relaymesh-") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := install.Cleanup(p); err != nil {
			n.log.Error("cannot remove stale temp dir", "dir", p, "err", err)
			continue
		}
		n.log.Info("removed stale temp dir", "dir", p)
	}
}
