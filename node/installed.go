package node

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node/runner"
)

// installedKV is runner.Installed over the node's KV: installed/<package
// ID> holds the order that installed it, installed-version/<name> the
// version installed under that name and its package ID, so a node can
// refuse a downgrade (ERR_DOWNGRADE).
type installedKV struct{ kv cache.KV }

const (
	keyInstalled        = "installed/"
	keyInstalledVersion = "installed-version/"
)

// installedVersion is the value under installed-version/<name>.
type installedVersion struct {
	Version string `json:"version"`
	Package string `json:"package"`
}

func (i installedKV) IsInstalled(pkgID string) (bool, error) {
	_, err := i.kv.Get(keyInstalled + pkgID)
	if errors.Is(err, cache.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (i installedKV) MarkInstalled(p runner.Package, orderID string) error {
	v, err := json.Marshal(installedVersion{Version: p.Manifest.Version, Package: p.ID})
	if err != nil {
		return err
	}
	return i.kv.Update(func(tx cache.KVTx) error {
		if err := tx.Set(keyInstalled+p.ID, []byte(orderID)); err != nil {
			return err
		}
		return tx.Set(keyInstalledVersion+p.Manifest.Name, v)
	})
}

func (i installedKV) Unmark(p runner.Package) error {
	return i.kv.Update(func(tx cache.KVTx) error {
		if err := tx.Delete(keyInstalled + p.ID); err != nil {
			return err
		}
		iv, err := getInstalledVersion(tx, p.Manifest.Name)
		if err != nil || iv.Package != p.ID {
			return err
		}
		return tx.Delete(keyInstalledVersion + p.Manifest.Name)
	})
}

func (i installedKV) InstalledVersion(name string) (string, string, error) {
	iv, err := getInstalledVersion(i.kv, name)
	return iv.Version, iv.Package, err
}

func getInstalledVersion(kv interface{ Get(string) ([]byte, error) }, name string) (installedVersion, error) {
	var iv installedVersion
	raw, err := kv.Get(keyInstalledVersion + name)
	if errors.Is(err, cache.ErrNotFound) {
		return iv, nil
	}
	if err != nil {
		return iv, err
	}
	if err := json.Unmarshal(raw, &iv); err != nil || iv.Version == "" {
		return installedVersion{}, fmt.Errorf("node: installed version record of %q is corrupt (%q); remove key %s%s or reinstall with --allow-downgrade", name, raw, keyInstalledVersion, name)
	}
	return iv, nil
}

// checkDowngrade refuses, before anything is fetched, a package of o older
// than the version of its name installed here (the runner checks again
// right before installing: another order may have installed meanwhile).
func (n *Node) checkDowngrade(o *core.Order, pkg string, m *core.Manifest) error {
	err := runner.Downgrade(installedKV{n.kv}, m, o.AllowDowngrade)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, runner.ErrDowngrade):
		return &packageError{pkg: pkg, state: core.ErrDowngrade, msg: err.Error()}
	}
	return fmt.Errorf("node: %w", err)
}
