package runner

import (
	"errors"
	"fmt"

	"github.com/relaymesh/relaymesh/core"
)

// ErrDowngrade marks a package older than the version of its name that
// is installed on the node.
var ErrDowngrade = errors.New("downgrade refused")

// Downgrade returns an error wrapping ErrDowngrade when m is older than the
// version installed under its name and allow is false; versions are
// ordered as dpkg orders them (core.CompareVersions). Any other error is
// the installed record's.
func Downgrade(inst Installed, m *core.Manifest, allow bool) error {
	if allow {
		return nil
	}
	have, pkg, err := inst.InstalledVersion(m.Name)
	if err != nil {
		return fmt.Errorf("cannot read the installed version of %s: %w", m.Name, err)
	}
	if have == "" || core.CompareVersions(m.Version, have) >= 0 {
		return nil
	}
	return fmt.Errorf("%w: %s %s is older than %s %s, installed on this node by package %s; deploy it with --allow-downgrade to install the older version",
		ErrDowngrade, m.Name, m.Version, m.Name, have, pkg)
}
