package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node/install"
)

// installOne installs p. installed reports whether p's software is on the
// node because of this call (its command, or the store, succeeded with an
// exit code that means installed), whatever the final state: an ERR_CLEAN
// package is installed.
func (r *Runner) installOne(ctx context.Context, o *order, p Package, onStart func(string)) (res Result, installed bool) {
	res = Result{Package: p.ID, ExitCode: noExit}
	fail := func(st core.State, format string, a ...any) (Result, bool) {
		res.State, res.Detail = st, fmt.Sprintf(format, a...)
		return res, false
	}
	if err := checkPackage(p); err != nil {
		return fail(core.ErrBadID, "%v", err)
	}
	m := p.Manifest
	log := r.log.With("order", o.req.OrderID, "package", p.ID, "name", m.Name, "version", m.Version)
	if err := ctx.Err(); err != nil {
		return fail(core.ErrAborted, "order aborted: %v", context.Cause(ctx))
	}
	switch done, err := r.inst.IsInstalled(p.ID); {
	case err != nil:
		log.Error("cannot read installed record", "err", err)
		return fail(core.ErrAborted, "cannot tell whether the package is installed: %v", err)
	case done && m.Action == core.ActionApt:
		// Its files may have been replaced since (apt-get update on the
		// host rewrites the lists): place them again; apt and the rescan
		// say what is installed.
		log.Info("apt package installed by an earlier order: applying it again")
	case done && !o.req.Force:
		log.Info("already installed")
		return fail(core.ErrAlreadySetup, "installed by an earlier order (deploy with --force to install it again)")
	case done:
		log.Info("installed by an earlier order: installing again (force)")
	}
	if err := Downgrade(r.inst, m, o.req.AllowDowngrade); err != nil {
		if errors.Is(err, ErrDowngrade) {
			log.Warn("refused: downgrade", "detail", err)
			return fail(core.ErrDowngrade, "%v", err)
		}
		log.Error("cannot read installed version", "err", err)
		return fail(core.ErrAborted, "%v", err)
	}
	if o.spent() {
		return fail(core.ErrTimeout, "order timeout %v used up before the install started", o.req.Timeout)
	}

	onStart(p.ID)
	log.Info("installing", "action", m.Action, "size", m.Size)
	start := time.Now()
	pctx := ctx // reassembly and extraction: the order's budget applies
	if !o.deadline.IsZero() {
		var cancel context.CancelFunc
		pctx, cancel = context.WithDeadline(ctx, o.deadline)
		defer cancel()
	}
	ws, err := r.prepare(pctx, m, true)
	switch {
	case err != nil:
		res.State, res.Detail = classifyPrepare(ctx, pctx, o, err)
	case m.Action == core.ActionDeb:
		timeout, source, ok := o.timeout(m, r.cfg.DefaultTimeout)
		if !ok {
			res.State, res.Detail = core.ErrTimeout, fmt.Sprintf("order timeout %v used up before the command started", o.req.Timeout)
			break
		}
		argv := append(slices.Clone(r.cfg.DebInstall), ws.deb)
		run := runCommand(ctx, argv, ws.dir, r.debEnv(o, &p, ws.dir), timeout, r.started(o, p, ws))
		res.State, res.ExitCode, res.Detail = classifyRun(run, timeout, source)
		res.Output = core.Tail(run.Output, core.MaxOutputTail)
		if res.State == core.StateSuccess && res.ExitCode != 0 {
			// apt and dpkg exit 0 when installed; anything else is a failure.
			res.State, res.Detail = core.ErrExecute, fmt.Sprintf("%s exited %d: %s", argv[0], res.ExitCode, lastLine(run.Output))
		}
	case m.Action == core.ActionApt:
		res = r.installApt(ctx, o, p, ws, func() (time.Duration, string, bool) { return o.timeout(m, r.cfg.DefaultTimeout) })
	case len(m.Command) == 0: // store without command
		res.State, res.ExitCode = core.StateSuccess, 0
	default:
		timeout, source, ok := o.timeout(m, r.cfg.DefaultTimeout)
		if !ok {
			res.State, res.Detail = core.ErrTimeout, fmt.Sprintf("order timeout %v used up before the command started", o.req.Timeout)
			break
		}
		run := runCommand(ctx, m.Command, ws.dir, r.env(o, &p, ws.dir), timeout, r.started(o, p, ws))
		res.State, res.ExitCode, res.Detail = classifyRun(run, timeout, source)
		res.Output = core.Tail(run.Output, core.MaxOutputTail)
		if res.State == core.StateSuccess && !m.Succeeded(res.ExitCode) {
			res.State = core.ErrExecute
			res.Detail = fmt.Sprintf("exit code %d: the package's success codes are %s", res.ExitCode, m.SuccessCodeList())
		}
		if res.State == core.StateSuccess && rebootCode(res.ExitCode) {
			o.reboot = true
		}
	}
	installed = res.State == core.StateSuccess
	if installed {
		if err := r.inst.MarkInstalled(p, o.req.OrderID); err != nil {
			log.Error("cannot record the install", "err", err)
			res.Detail = join(res.Detail, fmt.Sprintf("installed, but the installed record could not be written: %v", err))
		}
	}
	if err := ws.cleanup(); err != nil {
		log.Error("cannot remove temp dir", "err", err)
		if res.State == core.StateSuccess {
			res.State = core.ErrClean
		}
		res.Detail = join(res.Detail, err.Error())
	}
	log.Info("installed", "state", res.State, "exit_code", res.ExitCode, "took", time.Since(start), "detail", res.Detail)
	return res, installed
}

// rollback uninstalls p, which this order installed, after a bulk order
// failed. prev is p's last result; the returned one replaces it.
func (r *Runner) rollback(ctx context.Context, o *order, p Package, prev Result) (res Result) {
	res = prev
	res.State = core.ErrAborted
	m := p.Manifest
	log := r.log.With("order", o.req.OrderID, "package", p.ID, "name", m.Name, "version", m.Version)
	was := ""
	if prev.State != core.StateSuccess {
		was = fmt.Sprintf("; the install was %s: %s", prev.State, prev.Detail)
	}
	stays := func(format string, a ...any) Result {
		res.Detail = fmt.Sprintf(format, a...) + "; the package stays installed" + was
		log.Warn("bulk rollback failed", "detail", res.Detail)
		return res
	}
	log.Info("rolling back")
	u, err := r.runUninstall(ctx, o, p, log)
	if err != nil {
		return stays("not rolled back: %v", err)
	}
	out := prev.Output + "\n--- uninstall (bulk rollback) ---\n" + string(u.output)
	res.Output = core.Tail([]byte(out), core.MaxOutputTail)
	switch {
	case u.state != core.StateSuccess:
		return stays("rollback failed: uninstall %s: %s", u.state, u.detail)
	case !installedCode(u.code):
		return stays("rollback failed: uninstall exited %d", u.code)
	}
	if err := r.inst.Unmark(p); err != nil {
		log.Error("cannot clear the installed record", "err", err)
		res.Detail = "rolled back, but the installed record could not be cleared: " + err.Error() + was
		return res
	}
	res.Detail = "rolled back" + was
	if u.cleanup != "" {
		res.Detail = join(res.Detail, u.cleanup)
	}
	log.Info("rolled back")
	return res
}

// uninstallOne runs p's uninstall command for an uninstall order: SUCCESS
// (and the installed record cleared) when it exits with a success code,
// the error of the run otherwise.
func (r *Runner) uninstallOne(ctx context.Context, o *order, p Package, onStart func(string)) Result {
	res := Result{Package: p.ID, ExitCode: noExit}
	if err := checkPackage(p); err != nil {
		res.State, res.Detail = core.ErrBadID, err.Error()
		return res
	}
	m := p.Manifest
	log := r.log.With("order", o.req.OrderID, "package", p.ID, "name", m.Name, "version", m.Version)
	onStart(p.ID)
	start := time.Now()
	u, err := r.runUninstall(ctx, o, p, log)
	if err != nil {
		res.State, res.Detail = core.ErrExecute, "not uninstalled: "+err.Error()
		if ctx.Err() != nil {
			res.State = core.ErrAborted
		}
		log.Warn("uninstall failed", "detail", res.Detail)
		return res
	}
	res.State, res.ExitCode, res.Output, res.Detail = u.state, u.code, string(core.Tail(u.output, core.MaxOutputTail)), u.detail
	if u.state == core.StateSuccess && !installedCode(u.code) {
		res.State, res.Detail = core.ErrExecute, fmt.Sprintf("uninstall exited %d", u.code)
	}
	if res.State == core.StateSuccess {
		res.Detail = "uninstalled"
		if err := r.inst.Unmark(p); err != nil {
			log.Error("cannot clear the installed record", "err", err)
			res.Detail = "uninstalled, but the installed record could not be cleared: " + err.Error()
		}
	}
	if u.cleanup != "" {
		res.Detail = join(res.Detail, u.cleanup)
	}
	log.Info("uninstalled", "state", res.State, "exit_code", res.ExitCode, "took", time.Since(start), "detail", res.Detail)
	return res
}

// uninstallRun is what one run of a package's uninstall command gave.
type uninstallRun struct {
	output  []byte
	state   core.State // as classifyRun says: SUCCESS when it ran to an exit code
	code    int
	detail  string
	cleanup string // why the temp dir could not be removed, if it could not
}

// runUninstall runs p's uninstall command (for a .deb, Config.DebRemove
// NAME) in a workspace prepared as for its install. The error says why no
// command ran.
func (r *Runner) runUninstall(ctx context.Context, o *order, p Package, log *slog.Logger) (u uninstallRun, err error) {
	m := p.Manifest
	uninstall := m.Uninstall
	if m.Action == core.ActionDeb {
		uninstall = append(slices.Clone(r.cfg.DebRemove), m.Name)
	}
	if len(uninstall) == 0 {
		return u, errors.New("the package has no uninstall command")
	}
	if err := ctx.Err(); err != nil {
		return u, fmt.Errorf("order aborted (%v)", context.Cause(ctx))
	}
	ws, err := r.prepare(ctx, m, false)
	defer func() {
		if err := ws.cleanup(); err != nil {
			log.Error("cannot remove temp dir", "err", err)
			u.cleanup = err.Error()
		}
	}()
	if err != nil {
		return u, fmt.Errorf("cannot prepare the uninstall: %v", err)
	}
	timeout, source := r.cfg.DefaultTimeout, "default timeout"
	if m.TimeoutSec > 0 {
		timeout, source = time.Duration(m.TimeoutSec)*time.Second, "package timeout"
	}
	env := r.env(o, &p, ws.dir)
	if m.Action == core.ActionDeb {
		env = r.debEnv(o, &p, ws.dir)
	}
	run := runCommand(ctx, uninstall, ws.dir, env, timeout, r.started(o, p, ws))
	u.output = run.Output
	u.state, u.code, u.detail = classifyRun(run, timeout, source)
	if u.state == core.StateSuccess && rebootCode(u.code) {
		o.reboot = true
	}
	return u, nil
}

// checkPackage refuses a package whose manifest is missing, invalid, or not
// the one its ID names (the ID is in the signed order; the manifest must be
// what it hashes to).
func checkPackage(p Package) error {
	if p.Manifest == nil {
		return fmt.Errorf("%w: package %q has no manifest", ErrRequest, p.ID)
	}
	want, err := core.ParseCID(p.ID)
	if err != nil {
		return fmt.Errorf("%w: package ID: %w", ErrRequest, err)
	}
	got, _, err := p.Manifest.ID()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRequest, err)
	}
	if !got.Equals(want) {
		return fmt.Errorf("%w: manifest %s is not package %s", ErrRequest, got, want)
	}
	return nil
}

// workspace is where a package's command runs.
type workspace struct {
	tmp string // the package's temp dir, removed by cleanup; "" if none
	dir string // the command's working dir and RELAYMESH_PACKAGE_DIR
	deb string // action deb: the reassembled .deb
}

// prepare makes m's workspace: a fresh temp dir holding the extracted
// archive (launch, execute with an archive), or an empty one (execute
// without archive), or StorePath (store; the archive is extracted there when
// unpackStore, that is for the install but not for the uninstall). The
// returned workspace must be cleaned up, also on error.
func (r *Runner) prepare(ctx context.Context, m *core.Manifest, unpackStore bool) (workspace, error) {
	var ws workspace
	if m.Action == core.ActionStore {
		ws.dir = m.StorePath
		if !unpackStore {
			return ws, nil
		}
	}
	tmp, err := os.MkdirTemp(r.cfg.TempDir, "relaymesh-*")
	if err != nil {
		return ws, fmt.Errorf("%w: temp dir: %w", ErrBuild, err)
	}
	ws.tmp = tmp
	if ws.dir == "" {
		ws.dir = filepath.Join(tmp, "pkg")
	}
	if m.Size == 0 || m.Action == core.ActionDeb && !unpackStore { // execute without archive; a deb's removal
		if err := os.Mkdir(ws.dir, 0o755); err != nil {
			return ws, fmt.Errorf("%w: %w", ErrBuild, err)
		}
		return ws, nil
	}
	if m.Action == core.ActionDeb {
		// Not extracted: apt/dpkg install the .deb as it is.
		if err := os.Mkdir(ws.dir, 0o755); err != nil {
			return ws, fmt.Errorf("%w: %w", ErrBuild, err)
		}
		archive := filepath.Join(ws.dir, debFileName(m))
		if err := assemble(ctx, r.frags, m, archive); err != nil {
			return ws, err
		}
		ws.deb = archive
		return ws, nil
	}
	if m.Action == core.ActionStore {
		if err := os.MkdirAll(ws.dir, 0o755); err != nil {
			return ws, fmt.Errorf("%w: store path: %w", ErrUnpack, err)
		}
	}
	// A tar.gz going into the package's own temp dir streams from the
	// fragments; a store path gets only a whole, checked archive (a
	// fragment lost midway must not leave half a package there).
	return ws, r.unpack(ctx, m, tmp, ws.dir, m.Action != core.ActionStore)
}

// unpack extracts m's archive into dir. With stream, a tar.gz goes from
// the fragments straight into the extractor, each fragment checked against
// its CID before a byte of it is extracted and the whole archive's size and
// digest checked at its end, before anything runs; the archive is never
// written whole. Otherwise, and for a zip (which needs random access), the
// archive is reassembled into tmp first.
func (r *Runner) unpack(ctx context.Context, m *core.Manifest, tmp, dir string, stream bool) error {
	a := newArchiveReader(ctx, r.frags, m)
	br := bufio.NewReaderSize(a, 256<<10)
	magic, perr := br.Peek(2)
	if perr != nil {
		if aerr := a.failed(); aerr != nil {
			return aerr
		}
	}
	if stream && perr == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		st, err := install.ExtractTarGz(ctx, br, dir, r.cfg.Limits)
		if err == nil {
			// Read to the end: the size and digest checks run there.
			_, err = io.Copy(io.Discard, br)
		}
		if err != nil {
			if aerr := a.failed(); aerr != nil {
				return aerr
			}
			return fmt.Errorf("%w: %w", ErrUnpack, err)
		}
		r.log.Debug("extracted", "dir", dir, "files", st.Files, "bytes", st.Bytes, "streamed", true)
		return nil
	}
	archive := filepath.Join(tmp, "archive")
	if err := writeArchive(archive, br, a); err != nil {
		return err
	}
	st, err := install.Extract(ctx, archive, dir, r.cfg.Limits)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnpack, err)
	}
	r.log.Debug("extracted", "dir", dir, "files", st.Files, "bytes", st.Bytes)
	// The command does not need the archive; free its space now.
	if err := os.Remove(archive); err != nil {
		r.log.Warn("cannot remove reassembled archive", "path", archive, "err", err)
	}
	return nil
}

// writeArchive copies the archive from r (reading a) into the new file path.
func writeArchive(path string, r io.Reader, a *archiveReader) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBuild, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%w: %w", ErrBuild, cerr)
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		if aerr := a.failed(); aerr != nil {
			return aerr
		}
		return fmt.Errorf("%w: %w", ErrBuild, err)
	}
	return nil
}

// debFileName is the .deb's file name as Debian names it (the epoch's
// colon left out).
func debFileName(m *core.Manifest) string {
	v := m.Version
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	arch := m.Arch
	if arch == "any" {
		arch = "all"
	}
	return m.Name + "_" + v + "_" + arch + ".deb"
}

// debEnv is env with what apt and dpkg need to run unattended.
func (r *Runner) debEnv(o *order, p *Package, dir string) []string {
	return append(r.env(o, p, dir), "DEBIAN_FRONTEND=noninteractive", "APT_LISTCHANGES_FRONTEND=none", "LC_ALL=C")
}

// lastLine is the last non-empty line of out, for a detail.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return clip(lines[len(lines)-1])
}

// cleanup removes the workspace's temp dir.
func (ws workspace) cleanup() error {
	if ws.tmp == "" {
		return nil
	}
	return install.Cleanup(ws.tmp)
}

// classifyPrepare maps a prepare error to a state and detail. pctx is ctx
// bounded by the order's budget.
func classifyPrepare(ctx, pctx context.Context, o *order, err error) (core.State, string) {
	switch {
	case ctx.Err() != nil:
		return core.ErrAborted, fmt.Sprintf("order aborted: %v", context.Cause(ctx))
	case pctx.Err() != nil:
		return core.ErrTimeout, fmt.Sprintf("order timeout %v reached before the command started: %v", o.req.Timeout, err)
	case errors.Is(err, ErrDigest):
		return core.ErrBadDigestSt, err.Error()
	case errors.Is(err, ErrUnpack):
		return core.ErrDownloadPack, err.Error()
	default:
		return core.ErrBuild, err.Error()
	}
}

// runCommand runs argv through install.Run.
func runCommand(ctx context.Context, argv []string, dir string, env []string, timeout time.Duration, started func(int) error) install.Result {
	return install.Run(ctx, install.Spec{
		Argv:      argv,
		Dir:       dir,
		Env:       env,
		Timeout:   timeout,
		TailBytes: core.MaxOutputTail,
		Started:   started,
	})
}

// started is the install.Spec.Started of p's command: Config.Started with
// the order, package and temp dir, or nil when it is not set.
func (r *Runner) started(o *order, p Package, ws workspace) func(int) error {
	if r.cfg.Started == nil {
		return nil
	}
	return func(pgid int) error { return r.cfg.Started(o.req.OrderID, p.ID, ws.tmp, pgid) }
}

// classifyRun maps what install.Run reported to a state, exit code and
// detail. source says where the timeout came from.
func classifyRun(res install.Result, timeout time.Duration, source string) (core.State, int, string) {
	switch {
	case res.Cancelled:
		return core.ErrAborted, res.ExitCode, "order aborted while the command ran; its process group was killed"
	case res.TimedOut:
		return core.ErrTimeout, res.ExitCode, fmt.Sprintf("killed with its process group after %v (%s)", timeout.Round(time.Millisecond), source)
	case res.Err != nil:
		return core.ErrExecute, res.ExitCode, res.Err.Error()
	}
	return core.StateSuccess, res.ExitCode, ""
}

// spent reports whether the order's budget, if any, is used up.
func (o *order) spent() bool {
	return !o.deadline.IsZero() && !time.Now().Before(o.deadline)
}

// timeout is how long m's command may run, and where that comes from; ok is
// false when the order's budget is used up.
func (o *order) timeout(m *core.Manifest, def time.Duration) (d time.Duration, source string, ok bool) {
	if !o.deadline.IsZero() {
		left := time.Until(o.deadline)
		return left, fmt.Sprintf("what was left of the order timeout %v", o.req.Timeout), left > 0
	}
	if m.TimeoutSec > 0 {
		return time.Duration(m.TimeoutSec) * time.Second, "package timeout", true
	}
	return def, "default timeout", true
}

// join appends b to the detail a.
func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// maxDetail is core.Status's cap on Detail.
const maxDetail = 4096

// clip makes s a valid Detail: UTF-8, at most maxDetail bytes.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
