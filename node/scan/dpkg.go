package scan

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"pault.ag/go/debian/control"
	"pault.ag/go/debian/version"

	"github.com/relaymesh/relaymesh/core"
)

// readDpkgStatus reads dpkg's status database (the "status" file of its
// admin dir): the installed packages, and those dpkg left in between
// states (broken). Packages only remembered for their config files, or not
// installed, are skipped.
func readDpkgStatus(path string) (installed, broken []core.Package, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: dpkg status %s: %w (set dpkg_admindir to dpkg's admin dir)", ErrInventory, path, err)
	}
	defer f.Close()
	return parseDpkgStatus(f, path)
}

func parseDpkgStatus(r io.Reader, path string) (installed, broken []core.Package, err error) {
	pr, err := control.NewParagraphReader(r, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: dpkg status %s: %w", ErrInventory, path, err)
	}
	last := ""
	for i := 1; ; i++ {
		p, err := pr.Next()
		if errors.Is(err, io.EOF) {
			return installed, broken, nil
		}
		where := fmt.Sprintf("entry %d", i)
		if last != "" {
			where += " (after package " + last + ")"
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: dpkg status %s: %s: %v: the file is damaged; check it with dpkg --audit", ErrInventory, path, where, strings.TrimSpace(err.Error()))
		}
		name := p.Values["Package"]
		if name == "" {
			return nil, nil, fmt.Errorf("%w: dpkg status %s: %s has no Package field", ErrInventory, path, where)
		}
		last = name
		st := strings.Fields(p.Values["Status"])
		if len(st) != 3 {
			return nil, nil, fmt.Errorf("%w: dpkg status %s: package %s: status %q: want three words such as \"install ok installed\"", ErrInventory, path, name, p.Values["Status"])
		}
		state := st[2]
		if state == "not-installed" || state == "config-files" {
			continue
		}
		v := p.Values["Version"]
		if _, err := version.Parse(v); err != nil || v == "" {
			return nil, nil, fmt.Errorf("%w: dpkg status %s: package %s: version %q: not a Debian version", ErrInventory, path, name, v)
		}
		pkg := core.Package{Name: name, Version: v, Arch: p.Values["Architecture"]}
		switch state {
		case "installed", "triggers-pending", "triggers-awaited":
			installed = append(installed, pkg)
		case "half-installed", "unpacked", "half-configured":
			pkg.Status = state
			broken = append(broken, pkg)
		default:
			return nil, nil, fmt.Errorf("%w: dpkg status %s: package %s: unknown state %q", ErrInventory, path, name, state)
		}
	}
}
