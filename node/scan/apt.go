package scan

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"pault.ag/go/debian/version"

	"github.com/relaymesh/relaymesh/core"
)

// aptArgs are the arguments of the simulated upgrade: every path apt uses
// comes from the config, so a test (or a chroot) has its own root.
func (c *Config) aptArgs() []string {
	args := []string{"-s", "-q", "-o", "Debug::NoLocking=1", "-o", "APT::Get::Show-User-Simulation-Note=false"}
	if c.AptRoot != "" {
		args = append(args, "-o", "Dir="+c.AptRoot)
	}
	args = append(args, "-o", "Dir::State::status="+c.statusPath(), "-o", "Dir::State::Lists="+c.listsDir())
	for _, o := range c.AptOptions {
		args = append(args, "-o", o)
	}
	return append(args, c.Upgrade)
}

// listsTime checks that the lists dir holds package indexes and returns
// when the newest was written. Without indexes apt would say "nothing to
// upgrade", which is not the same as compliant.
func listsTime(dir string) (time.Time, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: apt lists %s: %w: run apt-get update, or set apt_lists_dir", ErrNoLists, dir, err)
	}
	var newest time.Time
	found := false
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.Contains(e.Name(), "_Packages") {
			continue
		}
		found = true
		if fi, err := e.Info(); err == nil && fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	if !found {
		return time.Time{}, fmt.Errorf("%w: apt lists %s hold no package index: run apt-get update, or set apt_lists_dir", ErrNoLists, dir)
	}
	return newest.UTC().Truncate(time.Second), nil
}

// simulate runs apt-get's simulated upgrade and returns the updates it
// would install.
func (c *Config) simulate(ctx context.Context) ([]core.Update, []core.Package, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.AptGet, c.aptArgs()...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C", "DEBIAN_FRONTEND=noninteractive")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &limited{w: &stderr, n: 8 << 10}
	cmd.WaitDelay = time.Second
	err := cmd.Start()
	if err == nil {
		lowerPriority(cmd.Process.Pid)
		err = cmd.Wait()
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, nil, fmt.Errorf("%w: %s %s: no answer within %s (scan_timeout)", ErrApt, c.AptGet, c.Upgrade, c.Timeout)
	}
	if err != nil {
		msg := lastLines(stderr.String(), 3)
		if msg == "" {
			msg = lastLines(stdout.String(), 3)
		}
		return nil, nil, fmt.Errorf("%w: %s -s %s: %v: %s", ErrApt, c.AptGet, c.Upgrade, err, msg)
	}
	news := parseNew(stdout.Bytes())
	ups, err := parseSimulation(&stdout, c.security)
	return ups, news, err
}

// parseNew reads the packages apt-get -s would newly install (Inst lines
// without an [installed version]): the new dependencies of the updates,
// which a patch deployment must carry along.
func parseNew(out []byte) []core.Package {
	var news []core.Package
	for _, line := range strings.Split(string(out), "\n") {
		rest, ok := strings.CutPrefix(line, "Inst ")
		if !ok {
			continue
		}
		name, rest, _ := strings.Cut(rest, " ")
		rest = strings.TrimSpace(rest)
		if !strings.HasPrefix(rest, "(") || len(news) >= core.MaxScanUpdates {
			continue
		}
		inner, _, _ := strings.Cut(rest[1:], ")")
		ver, rel, _ := strings.Cut(inner, " ")
		p := core.Package{Name: name, Version: ver}
		if i := strings.LastIndex(rel, " ["); i >= 0 && strings.HasSuffix(rel, "]") {
			p.Arch = rel[i+2 : len(rel)-1]
		}
		if n, a, ok := strings.Cut(name, ":"); ok {
			p.Name = n
			if p.Arch == "" {
				p.Arch = a
			}
		}
		if _, err := version.Parse(ver); err == nil && p.Name != "" && len(p.Name) <= 256 && len(ver) <= 256 && len(p.Arch) <= 256 {
			news = append(news, p)
		}
	}
	return news
}

// parseSimulation reads apt-get -s output: each upgrade is a line
//
//	Inst NAME [OLD] (NEW LABEL:VERSION/SUITE[, LABEL:SUITE…] [ARCH])
//
// Lines for new packages (no [OLD]), Conf and Remv lines are not updates.
func parseSimulation(r io.Reader, security func(label, suite string) bool) ([]core.Update, error) {
	var out []core.Update
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "Inst ")
		if !ok {
			continue
		}
		u, ok, err := parseInst(rest, security)
		if err != nil {
			return nil, fmt.Errorf("%w: apt-get output line %q: %w", ErrApt, line, err)
		}
		if ok {
			out = append(out, u)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: reading apt-get output: %w", ErrApt, err)
	}
	slices.SortFunc(out, func(a, b core.Update) int { return strings.Compare(a.Name+"\x00"+a.Arch, b.Name+"\x00"+b.Arch) })
	return out, nil
}

func parseInst(s string, security func(label, suite string) bool) (core.Update, bool, error) {
	name, s, _ := strings.Cut(s, " ")
	if name == "" {
		return core.Update{}, false, errors.New("no package name")
	}
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "[") {
		return core.Update{}, false, nil // a new package, not an update
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return core.Update{}, false, errors.New("unclosed [installed version]")
	}
	installed := s[1:end]
	s = strings.TrimSpace(s[end+1:])
	if !strings.HasPrefix(s, "(") {
		return core.Update{}, false, errors.New("no (candidate …) after the installed version")
	}
	end = strings.IndexByte(s, ')')
	if end < 0 {
		return core.Update{}, false, errors.New("unclosed (candidate …)")
	}
	inner := s[1:end]
	cand, rel, _ := strings.Cut(inner, " ")
	if cand == "" {
		return core.Update{}, false, errors.New("no candidate version")
	}
	u := core.Update{Installed: installed, Candidate: cand}
	if i := strings.LastIndex(rel, " ["); i >= 0 && strings.HasSuffix(rel, "]") {
		u.Arch = rel[i+2 : len(rel)-1]
		rel = rel[:i]
	}
	if n, a, ok := strings.Cut(name, ":"); ok {
		name = n
		if u.Arch == "" {
			u.Arch = a
		}
	}
	if name == "" {
		return core.Update{}, false, errors.New("no package name")
	}
	u.Name = name
	// apt lists a same-version "reinstall" when the index's metadata
	// differs from dpkg's record, and a downgrade when pinned to one:
	// neither is an update.
	iv, err1 := version.Parse(installed)
	cv, err2 := version.Parse(cand)
	if err1 != nil || err2 != nil {
		return core.Update{}, false, fmt.Errorf("installed %q or candidate %q is not a Debian version", installed, cand)
	}
	if version.Compare(cv, iv) <= 0 {
		return core.Update{}, false, nil
	}
	for _, src := range strings.Split(rel, ", ") {
		src = strings.TrimSpace(src)
		if src == "" {
			continue
		}
		label, where, ok := strings.Cut(src, ":")
		if !ok {
			label, where = "", src
		}
		suite := where
		if i := strings.LastIndexByte(where, '/'); i >= 0 {
			suite = where[i+1:]
		}
		if suite != "" && !slices.Contains(u.Suites, suite) && len(u.Suites) < 16 {
			u.Suites = append(u.Suites, suite)
		}
		if security(label, suite) {
			u.Security = true
		}
	}
	return u, true, nil
}

// defaultSecurity: a candidate is a security update when a repository it
// comes from has a suite ending in -security (Debian's and Ubuntu's
// security archives: bookworm-security, jammy-security) or a label naming
// security (Debian-Security, whose older suites were stable/updates).
func defaultSecurity(label, suite string) bool {
	return strings.HasSuffix(suite, "-security") || strings.Contains(strings.ToLower(label), "security")
}

// limited writes at most n bytes to w and drops the rest.
type limited struct {
	w io.Writer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// listsDir and statusPath resolve the configured paths.
func (c *Config) listsDir() string {
	if c.AptListsDir != "" {
		return c.AptListsDir
	}
	return filepath.Join(c.rootOr("/"), "var/lib/apt/lists")
}

func (c *Config) statusPath() string { return filepath.Join(c.DpkgAdmindir, "status") }

func (c *Config) rootOr(def string) string {
	if c.AptRoot != "" {
		return c.AptRoot
	}
	return def
}

// ListsDir is apt's lists dir the scan reads (and where an apt package's
// indexes go).
func (c *Config) ListsDir() string { return c.listsDir() }

// ArchivesDir is apt's archives dir (Dir::Cache::Archives): an apt_options
// entry that sets it, else var/cache/apt/archives under apt_root (or /).
func (c *Config) ArchivesDir() string {
	for _, o := range c.AptOptions {
		if v, ok := strings.CutPrefix(o, "Dir::Cache::Archives="); ok && filepath.IsAbs(v) {
			return v
		}
	}
	return filepath.Join(c.rootOr("/"), "var/cache/apt/archives")
}
