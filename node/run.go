package node

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node/runner"
)

// When a job runs (the rule, in one place):
//
//   - Its install starts at the first moment that is at or after the
//     order's NotBefore and inside its maintenance window (node local
//     time), and before it expires; an order that expires first fails
//     with ERR_EXPIRED.
//   - With Prefetch, the download starts at once, whatever NotBefore and
//     the window say. Without it, the download waits for that same install
//     moment: nothing crosses the WAN before the admin's schedule says so.
//   - Downloads of several jobs may run at once (ParallelDownloads, served
//     by priority then sequence); installs run one at a time, also served
//     by priority then sequence among the jobs that are ready.
//   - A download that fails is retried with backoff (JobBackoffMin doubling
//     to JobBackoffMax); after JobAttempts failures the job fails with
//     ERR_BUILD, and it never held the install slot, so other jobs went on.

// installTime is the first moment at or after now when o may install.
func (n *Node) installTime(o *core.Order) time.Time {
	start := n.cfg.now()
	if o.NotBefore.After(start) {
		start = o.NotBefore
	}
	w, err := core.ParseWindow(o.Window)
	if err != nil {
		return start // Validate refused such an order already
	}
	return w.NextOpen(start.Local())
}

// mayInstallNow reports whether o may install at this moment.
func (n *Node) mayInstallNow(o *core.Order) bool {
	now := n.cfg.now()
	w, err := core.ParseWindow(o.Window)
	return err == nil && !now.Before(o.NotBefore) && now.Before(o.Expires) && w.Contains(now.Local())
}

// waitUntil waits until the clock reaches t, in steps of at most
// WaitStep so a clock change is noticed; false when the job ended first.
func (n *Node) waitUntil(j *job, t time.Time) bool {
	for {
		d := t.Sub(n.cfg.now())
		if d <= 0 {
			return true
		}
		if !sleep(j.ctx, min(d, n.cfg.WaitStep)) {
			return false
		}
	}
}

// runJob takes one deploy job from where it is to its end.
func (n *Node) runJob(j *job) {
	defer n.forgetJob(j)
	o := j.order
	log := n.log.With("order", o.ID)
	if !o.Prefetch && !n.waitUntil(j, n.installTime(o)) {
		return
	}
	pkgs, ok := n.downloadWithRetry(j)
	if !ok {
		return
	}
	release, ok := n.awaitInstallSlot(j)
	if !ok {
		return
	}
	defer release()
	started, err := n.update(j, func(r *jobRecord) ([]core.Status, bool) {
		if r.Phase.final() || r.Phase == phaseInstalling {
			return nil, false
		}
		r.Phase = phaseInstalling
		return nil, true
	})
	if err != nil || !started {
		return // cancelled meanwhile, or the installing phase could not be stored: do not run
	}
	log.Info("installing", "packages", len(pkgs), "mode", o.Mode)
	req := runner.Request{OrderID: o.ID, Packages: pkgs, Mode: o.Mode, Reboot: o.Reboot,
		Timeout: time.Duration(o.Timeout) * time.Second, AllowDowngrade: o.AllowDowngrade, Force: o.Force,
		Uninstall: o.Uninstall}
	onStart := func(pkg string) {
		n.report(core.Status{OrderID: o.ID, Package: pkg, State: core.StateInstalling})
	}
	_, rebooted := n.inst.Install(j.ctx, req, onStart, func(res runner.Result) { n.onResult(j, res) })
	if err := n.kv.Delete(keyRunning + o.ID); err != nil {
		log.Warn("cannot drop the install record", "err", err)
	}
	_, _ = n.update(j, func(r *jobRecord) ([]core.Status, bool) {
		var reports []core.Status
		for _, p := range o.Packages {
			if _, done := r.Results[p]; !done { // the installer said nothing about it
				r.Results[p] = pkgResult{State: core.ErrAborted, ExitCode: -1}
				reports = append(reports, core.Status{Package: p, State: core.ErrAborted, ExitCode: -1,
					Detail: "installer returned no result"})
			}
		}
		r.Phase = phaseDone
		if rebooted {
			r.Detail = "reboot command ran"
		}
		return reports, true
	})
	n.unpin(o.ID)
	log.Info("order done", "rebooted", rebooted)
}

// downloadWithRetry downloads until it succeeds, the job fails for good,
// or the job ends.
func (n *Node) downloadWithRetry(j *job) ([]runner.Package, bool) {
	for {
		pkgs, err := n.download(j.ctx, j)
		if err == nil {
			return pkgs, true
		}
		if j.ctx.Err() != nil {
			return nil, false
		}
		if pe, ok := errors.AsType[*packageError](err); ok {
			n.fail(j, pe.state, pe.pkg, pe.Error())
			return nil, false
		}
		if errors.Is(err, cache.ErrDiskFull) {
			// Retrying fills nothing: fail now, with the numbers; the
			// admin deploys again once space is freed.
			n.fail(j, core.ErrDownloadPack, "", "does not fit: "+err.Error())
			return nil, false
		}
		var attempts int
		_, _ = n.update(j, func(r *jobRecord) ([]core.Status, bool) {
			r.Attempts++
			attempts = r.Attempts
			return nil, true
		})
		if attempts >= n.cfg.JobAttempts {
			n.fail(j, core.ErrBuild, "", fmt.Sprintf("download failed after %d attempts: %v", attempts, err))
			return nil, false
		}
		d := jitter(backoff(n.cfg.JobBackoffMin, n.cfg.JobBackoffMax, attempts), rand.Float64)
		n.log.Warn("download failed; will retry", "order", j.order.ID, "attempt", attempts, "retry_in", d, "err", err)
		if !sleep(j.ctx, d) {
			return nil, false
		}
	}
}

// awaitInstallSlot waits for the install moment and then for the install
// slot, and holds it only while the order may still install.
func (n *Node) awaitInstallSlot(j *job) (release func(), ok bool) {
	o := j.order
	for {
		at := n.installTime(o)
		if !at.Before(o.Expires) {
			n.fail(j, core.ErrExpiredSt, "", fmt.Sprintf("order expired at %s before it could install (window %q)",
				o.Expires.Format(time.RFC3339), o.Window))
			return nil, false
		}
		if !n.waitUntil(j, at) {
			return nil, false
		}
		release, err := n.install.acquire(j.ctx, j.rank())
		if err != nil {
			return nil, false
		}
		if n.mayInstallNow(o) {
			return release, true
		}
		release() // the window closed while another order installed
	}
}
