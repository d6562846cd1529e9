package runner

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"pault.ag/go/debian/deb"

	"github.com/relaymesh/relaymesh/core"
)

// An apt package (action apt) carries repository files the coordinator
// checked by apt's chain of trust: lists/ holds InRelease and package
// indexes under the names apt gives them, and is placed into the node's
// apt lists dir (Config.AptLists), so the scan and apt see what the
// coordinator mirrored; debs/ holds the .debs of updates, installed by
// one apt-get run (Config.AptInstall, with --no-download: what is not in
// the package is never fetched by the node). After apt, Config.AptCheck
// (the node's rescan) says what is installed now.

// AptWant is a package an apt package's .debs install: name, version and
// architecture from the .deb's control file.
type AptWant struct {
	Name, Version, Arch string
}

// installApt places the lists and installs the .debs of the extracted
// apt package in dir.
func (r *Runner) installApt(ctx context.Context, o *order, p Package, ws workspace, onDebs func() (time.Duration, string, bool)) (res Result) {
	res = Result{Package: p.ID, ExitCode: noExit}
	placed, err := r.placeLists(filepath.Join(ws.dir, "lists"))
	if err != nil {
		res.State, res.Detail = core.ErrExecute, err.Error()
		return res
	}
	debs, _ := filepath.Glob(filepath.Join(ws.dir, "debs", "*.deb"))
	slices.Sort(debs)
	if len(debs) == 0 {
		res.State, res.ExitCode = core.StateSuccess, 0
		res.Detail = fmt.Sprintf("%d repository index files placed in %s", placed, r.cfg.AptLists)
		return res
	}
	var want []AptWant
	for _, f := range debs {
		w, err := debControl(f)
		if err != nil {
			res.State, res.Detail = core.ErrDownloadPack, err.Error()
			return res
		}
		want = append(want, w)
	}
	// apt takes a .deb it finds in its archives dir under the name it
	// would download it as, once the file matches the index's size and
	// SHA256 (apt checks the hash itself); --no-download keeps it from
	// fetching anything else.
	if r.cfg.AptArchives == "" {
		res.State, res.Detail = core.ErrExecute, "apt package: this node has no apt archives dir (scan: apt_root in config.yaml)"
		return res
	}
	// apt does not hash a .deb it finds in its archives (a file of the
	// right size passes): check each against the SHA256 the indexes in
	// the lists dir give, which came signed with the order.
	if err := r.checkDebs(debs, want); err != nil {
		res.State, res.Detail = core.ErrBadDigestSt, err.Error()
		return res
	}
	var placedDebs, args []string
	defer func() {
		for _, f := range placedDebs {
			_ = os.Remove(f)
		}
	}()
	for i, f := range debs {
		dst := filepath.Join(r.cfg.AptArchives, archiveName(want[i]))
		if err := copyFile(f, dst); err != nil {
			res.State, res.Detail = core.ErrExecute, fmt.Sprintf("apt package: placing %s in %s: %v", filepath.Base(f), r.cfg.AptArchives, err)
			return res
		}
		placedDebs = append(placedDebs, dst)
		args = append(args, want[i].Name+"="+want[i].Version)
	}
	prev := r.dpkgVersions()
	timeout, source, ok := onDebs()
	if !ok {
		res.State, res.Detail = core.ErrTimeout, fmt.Sprintf("order timeout %v used up before apt started", o.req.Timeout)
		return res
	}
	argv := slices.Clone(r.cfg.AptInstall)
	_, err = os.Stat(filepath.Join(ws.dir, core.AptUpgradeOnly))
	upgrade := err == nil
	if upgrade {
		argv = append(argv, "--only-upgrade")
	}
	argv = append(argv, args...)
	run := runCommand(ctx, argv, ws.dir, r.debEnv(o, &p, ws.dir), timeout, r.started(o, p, ws))
	res.State, res.ExitCode, res.Detail = classifyRun(run, timeout, source)
	res.Output = core.Tail(run.Output, core.MaxOutputTail)
	names := make([]string, len(want))
	for i, w := range want {
		names[i] = w.Name + " " + w.Version
	}
	if res.State == core.StateSuccess && res.ExitCode != 0 {
		last := lastLine(run.Output)
		if dpkgLockHeld(run.Output) {
			last = "the dpkg lock stayed held by another process beyond the bound (DPkg::Lock::Timeout in apt_install): " + last
		}
		res.State, res.Detail = core.ErrExecute, fmt.Sprintf("%s exited %d installing %s: %s", argv[0], res.ExitCode, strings.Join(names, ", "), last)
		if rb := r.rollbackApt(ctx, o, p, ws, want, prev, timeout, source); rb != "" {
			res.Detail = join(res.Detail, rb)
		}
	}
	if r.cfg.AptCheck != nil && (res.State == core.StateSuccess || res.State == core.ErrExecute) {
		found, err := r.cfg.AptCheck(ctx, want, upgrade)
		switch {
		case err != nil && res.State == core.StateSuccess:
			res.State, res.Detail = core.ErrExecute, fmt.Sprintf("%s exited 0, but the rescan says: %v", argv[0], err)
		case err != nil:
			res.Detail = join(res.Detail, "rescan: "+err.Error())
		default:
			res.Detail = join(res.Detail, found)
		}
	} else if res.State == core.StateSuccess {
		res.Detail = "installed " + strings.Join(names, ", ")
	}
	return res
}

// placeLists copies the files of dir into the apt lists dir, each through
// a temporary file renamed into place.
func (r *Runner) placeLists(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("apt package: lists: %w", err)
	}
	if r.cfg.AptLists == "" {
		return 0, fmt.Errorf("apt package: it carries repository lists but this node has no apt lists dir (scan: apt_lists_dir or apt_root in config.yaml)")
	}
	if err := os.MkdirAll(r.cfg.AptLists, 0o755); err != nil {
		return 0, fmt.Errorf("apt package: lists dir %s: %w", r.cfg.AptLists, err)
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || name == "lock" || strings.ContainsAny(name, "/\\") {
			return n, fmt.Errorf("apt package: lists/%s: not a repository index file name", name)
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return n, fmt.Errorf("apt package: lists/%s: %w", name, err)
		}
		tmp := filepath.Join(r.cfg.AptLists, ".relaymesh-"+name)
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return n, fmt.Errorf("apt package: writing %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, filepath.Join(r.cfg.AptLists, name)); err != nil {
			_ = os.Remove(tmp)
			return n, fmt.Errorf("apt package: placing %s: %w", name, err)
		}
		n++
	}
	return n, nil
}

// debControl reads a .deb's name, version and architecture.
func debControl(path string) (AptWant, error) {
	d, closeFn, err := deb.LoadFile(path)
	if err != nil {
		return AptWant{}, fmt.Errorf("apt package: %s: not a readable .deb: %w", filepath.Base(path), err)
	}
	defer closeFn()
	c := d.Control
	return AptWant{Name: c.Package, Version: c.Version.String(), Arch: c.Architecture.String()}, nil
}

// archiveName is the file name apt gives the .deb of w in its archives
// dir: name_version_arch.deb, with ':' quoted.
func archiveName(w AptWant) string {
	q := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "_", "%5f"), ":", "%3a") }
	return q(w.Name) + "_" + q(w.Version) + "_" + q(w.Arch) + ".deb"
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".relaymesh"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// checkDebs checks each .deb against the SHA256 the package indexes in
// the apt lists dir list for its name, version and architecture.
func (r *Runner) checkDebs(debs []string, want []AptWant) error {
	sums := map[string][]string{} // name_version_arch -> SHA256s listed
	key := func(n, v, a string) string { return n + "_" + v + "_" + a }
	for _, w := range want {
		sums[key(w.Name, w.Version, w.Arch)] = nil
	}
	idx, _ := filepath.Glob(filepath.Join(r.cfg.AptLists, "*_Packages"))
	for _, f := range idx {
		if err := scanIndex(f, func(n, v, a, sum string) {
			if l, ok := sums[key(n, v, a)]; ok {
				sums[key(n, v, a)] = append(l, sum)
			}
		}); err != nil {
			return fmt.Errorf("apt package: reading index %s: %w", f, err)
		}
	}
	for i, f := range debs {
		w := want[i]
		listed := sums[key(w.Name, w.Version, w.Arch)]
		if len(listed) == 0 {
			return fmt.Errorf("apt package: %s %s (%s) is in no package index in %s: deploy the repository's indexes with it (deploy create --updates)", w.Name, w.Version, w.Arch, r.cfg.AptLists)
		}
		got, err := fileSHA256(f)
		if err != nil {
			return fmt.Errorf("apt package: %s: %w", filepath.Base(f), err)
		}
		if !slices.Contains(listed, got) {
			return fmt.Errorf("apt package: %s %s: the .deb's SHA256 %s is not the one the repository index lists (%s); nothing installed", w.Name, w.Version, got, strings.Join(listed, ", "))
		}
	}
	return nil
}

// scanIndex calls fn with the Package, Version, Architecture and SHA256
// of each paragraph of a Packages file.
func scanIndex(path string, fn func(name, version, arch, sum string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var n, v, a, sum string
	flush := func() {
		if n != "" && sum != "" {
			fn(n, v, a, strings.ToLower(sum))
		}
		n, v, a, sum = "", "", "", ""
	}
	for sc.Scan() {
		l := sc.Text()
		if l == "" {
			flush()
			continue
		}
		k, val, ok := strings.Cut(l, ":")
		if !ok || l[0] == ' ' {
			continue
		}
		val = strings.TrimSpace(val)
		switch k {
		case "Package":
			n = val
		case "Version":
			v = val
		case "Architecture":
			a = val
		case "SHA256":
			sum = val
		}
	}
	flush()
	return sc.Err()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// dpkgVersions reads the versions dpkg has installed (Config.DpkgStatus),
// nil when it cannot.
func (r *Runner) dpkgVersions() map[string]string {
	if r.cfg.DpkgStatus == "" {
		return nil
	}
	out := map[string]string{}
	var name, ver, status string
	flush := func() {
		if name != "" && strings.HasSuffix(status, " installed") {
			out[name] = ver
		}
		name, ver, status = "", "", ""
	}
	if err := scanParagraphs(r.cfg.DpkgStatus, func(k, v string) {
		switch k {
		case "Package":
			name = v
		case "Version":
			ver = v
		case "Status":
			status = v
		}
	}, flush); err != nil {
		return nil
	}
	return out
}

// rollbackApt, after a failed apt transaction of a bulk apt package,
// installs again the version each package had before (rollback/ holds
// the replaced versions the repository still offers), checked like the
// updates. It returns what it did, "" when there was nothing to do.
func (r *Runner) rollbackApt(ctx context.Context, o *order, p Package, ws workspace, want []AptWant, prev map[string]string, timeout time.Duration, source string) string {
	olds, _ := filepath.Glob(filepath.Join(ws.dir, "rollback", "*.deb"))
	if len(olds) == 0 || prev == nil {
		return ""
	}
	now := r.dpkgVersions()
	var debs []AptWant
	var files []string
	var missing []string
	for _, w := range want {
		was, had := prev[w.Name]
		if !had || now[w.Name] == was {
			continue // new here, or unchanged
		}
		found := false
		for _, f := range olds {
			c, err := debControl(f)
			if err == nil && c.Name == w.Name && c.Version == was {
				debs, files, found = append(debs, c), append(files, f), true
				break
			}
		}
		if !found {
			missing = append(missing, w.Name+" "+was)
		}
	}
	if len(debs) == 0 {
		if len(missing) > 0 {
			return "not rolled back: the versions replaced (" + strings.Join(missing, ", ") + ") are not in the package (the repository no longer offers them)"
		}
		return ""
	}
	if err := r.checkDebs(files, debs); err != nil {
		return "rollback refused: " + err.Error()
	}
	var placed, spec []string
	defer func() {
		for _, f := range placed {
			_ = os.Remove(f)
		}
	}()
	for i, f := range files {
		dst := filepath.Join(r.cfg.AptArchives, archiveName(debs[i]))
		if err := copyFile(f, dst); err != nil {
			return "rollback failed: " + err.Error()
		}
		placed = append(placed, dst)
		spec = append(spec, debs[i].Name+"="+debs[i].Version)
	}
	argv := append(slices.Clone(r.cfg.AptInstall), "--allow-downgrades")
	argv = append(argv, spec...)
	run := runCommand(ctx, argv, ws.dir, r.debEnv(o, &p, ws.dir), timeout, r.started(o, p, ws))
	st, code, detail := classifyRun(run, timeout, source)
	if st != core.StateSuccess || code != 0 {
		return fmt.Sprintf("rollback failed: %s exited %d: %s %s", argv[0], code, lastLine(run.Output), detail)
	}
	msg := "rolled back to " + strings.Join(spec, ", ")
	if len(missing) > 0 {
		msg += "; not rolled back (not offered any more): " + strings.Join(missing, ", ")
	}
	return msg
}

// scanParagraphs calls field for each "Key: value" line of a deb822 file
// and end after each paragraph.
func scanParagraphs(path string, field func(k, v string), end func()) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" {
			end()
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			continue
		}
		if k, v, ok := strings.Cut(l, ":"); ok {
			field(k, strings.TrimSpace(v))
		}
	}
	end()
	return sc.Err()
}

// dpkgLockHeld reports whether apt's output says it gave up waiting for
// the dpkg lock. apt words it several ways, depending on whether it could
// name the holder and which lock it was taking.
func dpkgLockHeld(out []byte) bool {
	for _, m := range []string{
		"Could not get lock",
		"Unable to acquire the dpkg frontend lock",
		"Unable to lock the administration directory",
	} {
		if bytes.Contains(out, []byte(m)) {
			return true
		}
	}
	return false
}
