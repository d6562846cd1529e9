package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"pault.ag/go/debian/version"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node/runner"
)

// aptCheck is the runner's AptCheck: after apt installed a patch
// deployment's .debs the node rescans, sends the scan report up (so the
// coordinator's compliance follows at once) and says what the scan found
// of the packages apt was to install.
func (n *Node) aptCheck(ctx context.Context, want []runner.AptWant, upgradeOnly bool) (string, error) {
	inv, err := n.scanner()(ctx)
	if err != nil {
		return "", fmt.Errorf("rescan failed: %w", err)
	}
	rep := core.ScanReport{Schema: core.ScanSchema, Time: n.cfg.now().UTC().Truncate(time.Second), Inventory: *inv}
	fit(&rep)
	if err := standIn(&rep).Validate(); err == nil {
		err = n.commit(func(tx cache.KVTx) error {
			if err := n.out.addScan(tx, rep); err != nil {
				return err
			}
			return tx.Set(keyScanLast, []byte(rep.Time.Format(time.RFC3339)))
		})
		if err != nil {
			n.log.Error("cannot store the rescan's report", "err", err)
		}
	}
	return checkWanted(inv, want, upgradeOnly)
}

// checkWanted says whether inv has each wanted package at its version or
// later, with the updates the scan still lists.
func checkWanted(inv *core.Inventory, want []runner.AptWant, upgradeOnly bool) (string, error) {
	have := make(map[string]string, len(inv.Installed))
	for _, p := range inv.Installed {
		have[p.Name] = p.Version
	}
	pending := make(map[string]string, len(inv.Updates))
	for _, u := range inv.Updates {
		pending[u.Name] = u.Installed
	}
	var ok, missing []string
	for _, w := range want {
		v, found := have[w.Name]
		if inv.Truncated && !found {
			v, found = pending[w.Name]
			if !found {
				ok = append(ok, w.Name+" "+w.Version)
				continue
			}
		}
		switch {
		case !found && upgradeOnly:
			continue // not installed here: nothing to upgrade
		case !found:
			missing = append(missing, w.Name+" is not installed")
		case newer(w.Version, v):
			missing = append(missing, fmt.Sprintf("%s is at %s, not %s", w.Name, v, w.Version))
		default:
			ok = append(ok, w.Name+" "+v)
		}
	}
	left := fmt.Sprintf("%d updates left (%d security)", len(inv.Updates), inv.SecurityCount())
	if inv.Error != "" {
		left = "scan: " + inv.Error
	}
	for _, b := range inv.Broken {
		missing = append(missing, fmt.Sprintf("%s %s is %s", b.Name, b.Version, b.Status))
	}
	if len(missing) > 0 {
		return "", errors.New(strings.Join(missing, "; ") + "; " + left)
	}
	if len(ok) == 0 {
		return "rescan: none of these packages is installed here, nothing to upgrade; " + left, nil
	}
	return "rescan: " + strings.Join(ok, ", ") + " installed; " + left, nil
}

// newer reports whether version a is newer than b (dpkg's order).
func newer(a, b string) bool {
	va, e1 := version.Parse(a)
	vb, e2 := version.Parse(b)
	if e1 != nil || e2 != nil {
		return a > b
	}
	return version.Compare(va, vb) > 0
}
