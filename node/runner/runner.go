package runner

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
)

// Fragments is where the runner reads fragments from. The node's cache.Store
// satisfies it.
type Fragments interface {
	Get(c cid.Cid) ([]byte, error)
}

// VerifiedFragments is Fragments that hands out fragments it checked
// against their CID itself (the node's badger store does on every read), so
// reassembly does not hash them a second time. Without it, reassembly
// hashes every fragment it gets.
type VerifiedFragments interface {
	GetVerified(c cid.Cid) (core.Verified, error)
}

// Refetcher is a Fragments that can replace a fragment it lost or holds
// wrong: Refetch drops what is stored under c and fetches it again (the
// node, from the mesh), size bytes long. Reassembly then reads and checks
// it again through Get.
type Refetcher interface {
	Refetch(ctx context.Context, c cid.Cid, size int64) error
}

// Installed is the durable record of what is installed on the node (the
// node backs it by its KV store).
type Installed interface {
	IsInstalled(pkgID string) (bool, error)
	// MarkInstalled records p as installed by the order, and p's version
	// as the one installed under its name, together.
	MarkInstalled(p Package, orderID string) error
	// Unmark forgets p, and its name's version if that record is p's.
	Unmark(p Package) error
	// InstalledVersion is the version recorded under a package name and
	// the package that put it there; "" when none is.
	InstalledVersion(name string) (version, pkgID string, err error)
}

// Package is one package of an order: its ID (the manifest's CID, from the
// signed order) and its verified manifest.
type Package struct {
	ID       string
	Manifest *core.Manifest
}

// Request is one order's installs.
type Request struct {
	OrderID  string
	Packages []Package
	// Mode is one-by-one (also when empty) or bulk.
	Mode core.InstallMode
	// Reboot is never (also when empty), if-needed or always.
	Reboot core.RebootPolicy
	// Timeout is one budget for the whole order; zero means each command
	// gets its manifest's TimeoutSec, else Config.DefaultTimeout.
	Timeout time.Duration
	// AllowDowngrade lets a package install over a newer version of its
	// name (the order's allow_downgrade); otherwise it fails ERR_DOWNGRADE.
	AllowDowngrade bool
	// Force installs a package this node installed before again (the
	// order's force); otherwise it is ERR_ALREADY_SETUP.
	Force bool
	// Uninstall runs each package's uninstall command instead of its
	// install (the order's uninstall); a bulk order stops at the first
	// failure and rolls nothing back.
	Uninstall bool
}

func (q *Request) validate() error {
	switch q.Mode {
	case "", core.ModeOneByOne, core.ModeBulk:
	default:
		return fmt.Errorf("%w: install mode %q: want %s or %s", ErrRequest, q.Mode, core.ModeOneByOne, core.ModeBulk)
	}
	switch q.Reboot {
	case "", core.RebootNever, core.RebootIfNeeded, core.RebootAlways:
	default:
		return fmt.Errorf("%w: reboot policy %q: want %s, %s or %s", ErrRequest, q.Reboot, core.RebootNever, core.RebootIfNeeded, core.RebootAlways)
	}
	if q.Timeout < 0 {
		return fmt.Errorf("%w: timeout %v: must not be negative", ErrRequest, q.Timeout)
	}
	return nil
}

// Result is the outcome of one package.
type Result struct {
	Package  string
	State    core.State
	ExitCode int // the command's exit code; -1 when no command ran to its end
	Output   string
	Detail   string
}

// noExit is the ExitCode of a result whose command did not run to its end.
const noExit = -1

// Runner installs orders' packages on this node. It is safe for concurrent
// use; orders run one at a time.
type Runner struct {
	cfg   Config
	frags Fragments
	inst  Installed
	log   *slog.Logger
	busy  chan struct{} // holds a token while an order installs
}

// New returns a Runner. Zero Config fields get their defaults; TempDir is
// created if missing.
func New(cfg Config, frags Fragments, inst Installed) (*Runner, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if frags == nil || inst == nil {
		return nil, fmt.Errorf("%w: Fragments and Installed are required", ErrConfig)
	}
	if err := os.MkdirAll(cfg.TempDir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: TempDir %q: %w", ErrConfig, cfg.TempDir, err)
	}
	cfg.Env = slices.Clone(cfg.Env)
	cfg.RebootCommand = slices.Clone(cfg.RebootCommand)
	return &Runner{cfg: cfg, frags: frags, inst: inst, log: cfg.Logger, busy: make(chan struct{}, 1)}, nil
}

// order is the state of one Install call.
type order struct {
	req      Request
	deadline time.Time // end of the order's budget; zero when it has none
	reboot   bool      // a command exited with a reboot-required code
}

// Install runs req's packages in order. Before each package whose install
// begins it calls onStart(pkgID) (the node reports INSTALLING); after each it
// calls onResult. In a bulk order that is rolled back, onResult is called a
// second time for the rolled-back packages: the last result for a package
// wins. Install returns the final result of every package, in req's order,
// and whether the reboot command ran and exited 0. Either callback may be
// nil.
func (r *Runner) Install(ctx context.Context, req Request, onStart func(pkg string), onResult func(Result)) ([]Result, bool) {
	if onStart == nil {
		onStart = func(string) {}
	}
	if onResult == nil {
		onResult = func(Result) {}
	}
	results := make([]Result, len(req.Packages))
	report := func(i int, res Result) {
		res.Detail = clip(res.Detail)
		results[i] = res
		onResult(res)
	}
	abortAll := func(why string) ([]Result, bool) {
		for i, p := range req.Packages {
			report(i, Result{Package: p.ID, State: core.ErrAborted, ExitCode: noExit, Detail: why})
		}
		return results, false
	}
	if err := req.validate(); err != nil {
		return abortAll(err.Error())
	}
	select {
	case r.busy <- struct{}{}:
		defer func() { <-r.busy }()
	case <-ctx.Done():
		return abortAll(fmt.Sprintf("order aborted before it started: %v", context.Cause(ctx)))
	}

	o := &order{req: req}
	if req.Timeout > 0 {
		o.deadline = time.Now().Add(req.Timeout)
	}
	log := r.log.With("order", req.OrderID)
	log.Info("order installing", "packages", len(req.Packages), "mode", req.Mode, "reboot", req.Reboot, "timeout", req.Timeout)

	var (
		installed []int  // indexes of the packages this order installed
		stopped   string // bulk: the package whose failure stopped the order
	)
	for i, p := range req.Packages {
		if stopped != "" {
			report(i, Result{Package: p.ID, State: core.ErrAborted, ExitCode: noExit,
				Detail: "bulk: stopped after failure of " + stopped})
			continue
		}
		if req.Uninstall {
			res := r.uninstallOne(ctx, o, p, onStart)
			report(i, res)
			if req.Mode == core.ModeBulk && res.State != core.StateSuccess {
				stopped = label(p)
			}
			continue
		}
		res, ok := r.installOne(ctx, o, p, onStart)
		report(i, res)
		if ok {
			installed = append(installed, i)
		}
		if req.Mode == core.ModeBulk && failsBulk(res) {
			stopped = label(p)
			log.Warn("bulk order stopped", "package", p.ID, "state", res.State, "exit_code", res.ExitCode)
		}
	}
	if stopped != "" && !req.Uninstall {
		for _, i := range slices.Backward(installed) {
			report(i, r.rollback(ctx, o, req.Packages[i], results[i]))
		}
	}
	return results, r.maybeReboot(ctx, o)
}

// maybeReboot runs the reboot command if the order's policy says so.
func (r *Runner) maybeReboot(ctx context.Context, o *order) bool {
	switch o.req.Reboot {
	case core.RebootAlways:
	case core.RebootIfNeeded:
		if !o.reboot && !r.rebootRequiredFile() {
			return false
		}
	default:
		return false
	}
	log := r.log.With("order", o.req.OrderID, "command", r.cfg.RebootCommand)
	if err := ctx.Err(); err != nil {
		log.Warn("reboot skipped: order aborted", "err", err)
		return false
	}
	res := runCommand(ctx, r.cfg.RebootCommand, r.cfg.TempDir, r.env(o, nil, ""), rebootTimeout, nil)
	if res.Err != nil || res.TimedOut || res.Cancelled || res.ExitCode != 0 {
		log.Error("reboot command failed", "exit_code", res.ExitCode, "timed_out", res.TimedOut,
			"cancelled", res.Cancelled, "err", res.Err, "output", core.Tail(res.Output, 1024))
		return false
	}
	log.Info("reboot command ran")
	return true
}

// rebootRequiredFile reports whether Config.RebootRequiredFile exists.
func (r *Runner) rebootRequiredFile() bool {
	f := r.cfg.RebootRequiredFile
	if f == "" || f == "-" {
		return false
	}
	_, err := os.Stat(f)
	return err == nil
}

// env is the environment of a command: the node's PATH, Config.Env, then the
// order's and (when p is not nil) the package's variables.
func (r *Runner) env(o *order, p *Package, dir string) []string {
	env := make([]string, 0, len(r.cfg.Env)+6)
	if path, ok := os.LookupEnv("PATH"); ok {
		env = append(env, "PATH="+path)
	}
	env = append(env, r.cfg.Env...)
	env = append(env, "RELAYMESH_ORDER_ID="+o.req.OrderID)
	if p != nil {
		env = append(env,
			"RELAYMESH_PACKAGE_ID="+p.ID,
			"RELAYMESH_PACKAGE_NAME="+p.Manifest.Name,
			"RELAYMESH_PACKAGE_VERSION="+p.Manifest.Version,
			"RELAYMESH_PACKAGE_DIR="+dir,
		)
	}
	return env
}

// failsBulk reports whether res stops a bulk order: any error state but
// ERR_ALREADY_SETUP (SUCCESS means the exit code was one of the
// package's success codes).
func failsBulk(res Result) bool {
	return res.State != core.StateSuccess && res.State != core.ErrAlreadySetup
}

// installedCode reports whether an uninstall command's exit code means it
// worked: 0, or one of the Windows reboot-required codes.
func installedCode(code int) bool { return code == 0 || rebootCode(code) }

// rebootCode reports whether code is ERROR_SUCCESS_REBOOT_REQUIRED (3010) or
// ERROR_SUCCESS_REBOOT_INITIATED (1641).
func rebootCode(code int) bool { return core.RebootCode(code) }

// label names a package for people: name and version when known.
func label(p Package) string {
	if p.Manifest == nil {
		return p.ID
	}
	return p.Manifest.Name + " " + p.Manifest.Version
}
