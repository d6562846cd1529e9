package runner

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/relaymesh/relaymesh/node/install"
)

// Config configures a Runner. The zero value of each field means its
// default (see DefaultConfig).
type Config struct {
	// TempDir is the parent of the per-install temp dirs. Default
	// os.TempDir(). It is created (0700) if missing.
	TempDir string
	// Limits caps what one archive may put on disk. Default
	// install.DefaultLimits().
	Limits install.Limits
	// RebootCommand is run when the reboot policy says so. Default
	// ["shutdown", "-r", "+1"].
	RebootCommand []string
	// Env is extra "KEY=value" environment for every command (the node sets
	// RELAYMESH_NODE_ID and RELAYMESH_NODE_NAME). It comes after the node's
	// PATH, so it may override it, and before the RELAYMESH_ORDER_ID and
	// RELAYMESH_PACKAGE_* variables, which it cannot.
	Env []string
	// RebootRequiredFile is a file whose presence after the installs means a
	// reboot is needed, for the if-needed policy: Debian and Ubuntu packages
	// create /var/run/reboot-required. Empty means that path on Linux and
	// none elsewhere; "-" means none.
	RebootRequiredFile string
	// DefaultTimeout bounds a command when neither the order nor the
	// manifest sets a timeout. Default 30 minutes.
	DefaultTimeout time.Duration
	// Logger receives progress and failures. Default: discard.
	Logger *slog.Logger
	// DebInstall is the argv that installs a .deb package (action deb);
	// the .deb's path is appended. Default: apt-get install, so its
	// dependencies resolve from the node's repositories, noninteractive,
	// keeping changed config files.
	DebInstall []string
	// DebRemove is the argv that removes an installed .deb package (a bulk
	// rollback); the package name is appended. Default: dpkg --remove,
	// which refuses to remove what other packages depend on.
	DebRemove []string
	// AptInstall is the argv that installs the .debs of an apt package
	// (a patch deployment's updates) in one transaction; NAME=VERSION of
	// each is appended (the .debs are in AptArchives). Default: apt-get install with --no-download (the node
	// never fetches from the repository), noninteractive, keeping changed
	// config files, waiting at most 5 minutes for the dpkg lock.
	AptInstall []string
	// AptLists is apt's lists dir, where an apt package's repository
	// indexes go; "" refuses packages that carry lists.
	AptLists string
	// AptArchives is apt's archives dir (Dir::Cache::Archives), where an
	// apt package's .debs are put for apt to take.
	AptArchives string
	// DpkgStatus is dpkg's status file, read before and after a failed
	// apt transaction to roll each package back to the version it had;
	// "" rolls nothing back.
	DpkgStatus string
	// AptCheck, when set, runs after apt installed an apt package's .debs
	// (the node rescans): it returns what it found, or an error when a
	// wanted package is not installed at its version (with upgradeOnly,
	// a package not installed at all is fine: it was not there to upgrade).
	AptCheck func(ctx context.Context, want []AptWant, upgradeOnly bool) (string, error)
	// Started, when set, is called once each install or uninstall command
	// runs, before it is waited for, with its order, package, temp dir
	// ("" for none) and process group ID. The node records these durably
	// so that, after a crash, it can end the group and remove the dir.
	// An error kills the command (ERR_EXECUTE).
	Started func(orderID, pkgID, tmp string, pgid int) error
}

// Defaults.
const (
	DefaultTimeout = 30 * time.Minute
	// rebootTimeout bounds the reboot command itself (which only schedules
	// the reboot).
	rebootTimeout = 5 * time.Minute
)

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		TempDir:            os.TempDir(),
		Limits:             install.DefaultLimits(),
		RebootCommand:      []string{"shutdown", "-r", "+1"},
		RebootRequiredFile: defaultRebootRequiredFile(),
		DefaultTimeout:     DefaultTimeout,
		Logger:             slog.New(slog.DiscardHandler),
		DebInstall: []string{"apt-get", "install", "-y", "-q", "--no-install-recommends", "--allow-downgrades",
			"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"},
		DebRemove: []string{"dpkg", "--remove"},
		AptInstall: []string{"apt-get", "install", "-y", "-q", "--no-download", "--no-install-recommends",
			"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", "-o", "DPkg::Lock::Timeout=300"},
	}
}

// withDefaults returns c with its zero fields set to the defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.TempDir == "" {
		c.TempDir = d.TempDir
	}
	if c.Limits == (install.Limits{}) {
		c.Limits = d.Limits
	}
	if len(c.RebootCommand) == 0 {
		c.RebootCommand = d.RebootCommand
	}
	if c.RebootRequiredFile == "" {
		c.RebootRequiredFile = d.RebootRequiredFile
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = d.DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if len(c.DebInstall) == 0 {
		c.DebInstall = d.DebInstall
	}
	if len(c.DebRemove) == 0 {
		c.DebRemove = d.DebRemove
	}
	if len(c.AptInstall) == 0 {
		c.AptInstall = d.AptInstall
	}
	return c
}

// Validate names the first invalid field.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	if !filepath.IsAbs(c.TempDir) {
		return bad("TempDir %q: must be an absolute path", c.TempDir)
	}
	if err := c.Limits.Validate(); err != nil {
		return bad("Limits: %v", err)
	}
	if len(c.RebootCommand) == 0 || c.RebootCommand[0] == "" {
		return bad("RebootCommand %q: needs a program name", c.RebootCommand)
	}
	if f := c.RebootRequiredFile; f != "" && f != "-" && !filepath.IsAbs(f) {
		return bad("RebootRequiredFile %q: must be an absolute path, or - for none", f)
	}
	for i, kv := range c.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return bad("Env[%d] %q: want KEY=value", i, kv)
		}
	}
	if len(c.DebInstall) == 0 || c.DebInstall[0] == "" || len(c.DebRemove) == 0 || c.DebRemove[0] == "" {
		return bad("DebInstall %q, DebRemove %q: each needs a program name", c.DebInstall, c.DebRemove)
	}
	if c.DefaultTimeout <= 0 {
		return bad("DefaultTimeout %v: must be positive (default %v)", c.DefaultTimeout, DefaultTimeout)
	}
	if c.Logger == nil {
		return bad("Logger is nil")
	}
	return nil
}

func defaultRebootRequiredFile() string {
	if runtime.GOOS == "linux" {
		return "/var/run/reboot-required"
	}
	return "-"
}
