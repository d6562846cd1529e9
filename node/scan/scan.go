// Package scan inventories a Debian or Ubuntu node: the packages dpkg has
// installed, the OS release, the running kernel, whether a reboot is
// required, and the updates the node's configured repositories offer, each
// marked security or not. Updates come from apt itself (a simulated
// upgrade), so they are what apt would install, dependencies and pins
// included. The scan reads whatever package lists are on disk; it never
// runs apt-get update.
package scan

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

var (
	ErrConfig    = errors.New("scan: bad config")
	ErrInventory = errors.New("scan: cannot read the installed packages")
	ErrNoLists   = errors.New("scan: no repository lists")
	ErrApt       = errors.New("scan: apt failed")
)

// Config says where everything a scan reads is. Every path can point
// into a private root, so a test never touches the host's dpkg or apt.
type Config struct {
	// DpkgAdmindir is dpkg's admin dir (dpkg --admindir); the scan reads
	// its status file, and tells apt to read the same one.
	DpkgAdmindir string `yaml:"dpkg_admindir"`
	// AptGet is the apt-get binary.
	AptGet string `yaml:"apt_get"`
	// AptRoot, when set, is passed as apt's Dir (apt -o Dir=…): apt's
	// config, sources and state are read under it.
	AptRoot string `yaml:"apt_root"`
	// AptListsDir is apt's lists dir (Dir::State::Lists); empty means
	// var/lib/apt/lists under AptRoot (or /).
	AptListsDir string `yaml:"apt_lists_dir"`
	// AptOptions are more apt options, each "Name=value" (passed as -o).
	AptOptions []string `yaml:"apt_options"`
	// Upgrade is the simulated apt-get command: dist-upgrade (the
	// default: everything apt would install, new dependencies included)
	// or upgrade (what it installs without adding or removing packages).
	Upgrade string `yaml:"upgrade"`
	// Timeout bounds the apt run.
	Timeout time.Duration `yaml:"timeout"`
	// OSRelease, KernelRelease and RebootRequired are the files read for
	// the OS, the running kernel and the reboot flag (RebootRequired
	// plus ".pkgs" lists the packages that asked for it).
	OSRelease      string `yaml:"os_release"`
	KernelRelease  string `yaml:"kernel_release"`
	RebootRequired string `yaml:"reboot_required"`

	security func(label, suite string) bool
}

// DefaultConfig scans the host.
func DefaultConfig() Config {
	return Config{
		DpkgAdmindir:   "/var/lib/dpkg",
		AptGet:         "apt-get",
		Upgrade:        "dist-upgrade",
		Timeout:        5 * time.Minute,
		OSRelease:      "/etc/os-release",
		KernelRelease:  "/proc/sys/kernel/osrelease",
		RebootRequired: "/var/run/reboot-required",
	}
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	if c.DpkgAdmindir == "" || c.AptGet == "" {
		return bad("dpkg_admindir %q, apt_get %q: both must be set", c.DpkgAdmindir, c.AptGet)
	}
	if c.Upgrade != "dist-upgrade" && c.Upgrade != "upgrade" {
		return bad("upgrade %q: want dist-upgrade or upgrade", c.Upgrade)
	}
	if c.Timeout <= 0 {
		return bad("timeout %s: must be positive", c.Timeout)
	}
	for _, o := range c.AptOptions {
		if k, _, ok := strings.Cut(o, "="); !ok || k == "" || strings.ContainsAny(k, " \t") {
			return bad("apt option %q: want Name=value, such as Dir::Etc::SourceList=/etc/apt/sources.list", o)
		}
	}
	return nil
}

// Scan inventories the node. It returns an error only when the installed
// packages cannot be read; a failure to list updates (no lists, apt
// failing) is in the inventory's Error, with everything else it found.
func Scan(ctx context.Context, c Config) (*core.Inventory, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.security == nil {
		c.security = defaultSecurity
	}
	inst, broken, err := readDpkgStatus(c.statusPath())
	if err != nil {
		return nil, err
	}
	inv := &core.Inventory{Manager: "dpkg", InstalledCount: len(inst), Installed: inst, Broken: broken}
	inv.OS = readOSRelease(c.OSRelease)
	if b, err := os.ReadFile(c.KernelRelease); err == nil {
		inv.Kernel = strings.TrimSpace(string(b))
	}
	inv.RebootRequired, inv.RebootPackages = readRebootRequired(c.RebootRequired)
	lt, err := listsTime(c.listsDir())
	if err == nil {
		inv.ListsTime = lt
		inv.Updates, inv.New, err = c.simulate(ctx)
	}
	if err != nil {
		inv.Error = err.Error()
	}
	return inv, nil
}

// readOSRelease reads os-release(5): KEY=value lines, values optionally
// quoted. A missing file gives an empty release.
func readOSRelease(path string) core.OSRelease {
	var r core.OSRelease
	f, err := os.Open(path)
	if err != nil {
		return r
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`").Replace(v[1 : len(v)-1])
		}
		if len(v) > 256 {
			v = v[:256]
		}
		switch k {
		case "ID":
			r.ID = v
		case "VERSION_ID":
			r.VersionID = v
		case "VERSION_CODENAME":
			r.Codename = v
		case "PRETTY_NAME":
			r.PrettyName = v
		}
	}
	return r
}

// readRebootRequired reports whether the reboot-required flag file exists
// and the packages its ".pkgs" file lists.
func readRebootRequired(path string) (bool, []string) {
	if _, err := os.Stat(path); err != nil {
		return false, nil
	}
	b, err := os.ReadFile(path + ".pkgs")
	if err != nil {
		return true, nil
	}
	var pkgs []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && len(l) <= 256 && !slices.Contains(pkgs, l) && len(pkgs) < 1024 {
			pkgs = append(pkgs, l)
		}
	}
	return true, pkgs
}
