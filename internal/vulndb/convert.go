// Package vulndb turns the golang.org/x/vulndb module (fetched through the Go
// module proxy like any module) into the on-disk database layout that
// govulncheck reads with -db file:///DIR, and decides from govulncheck's JSON
// output whether a build must fail.
//
// The module holds one OSV file per report in data/osv/GO-YYYY-NNNN.json.
// govulncheck's v1 layout (https://go.dev/security/vuln/database#api) wants
//
//	index/db.json       {"modified": T}
//	index/modules.json  [{"path": P, "vulns": [{"id": ID, "modified": T}]}]
//	index/vulns.json    [{"id": ID, "modified": T, "aliases": [...]}]
//	ID/<id>.json        the OSV entry itself
//
// Convert writes exactly that, so the scan needs no network at all.
package vulndb

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

var (
	ErrNoEntries = errors.New("vulndb: no OSV entries")
	ErrBadEntry  = errors.New("vulndb: bad OSV entry")
	ErrNoScan    = errors.New("vulndb: not a govulncheck JSON stream")
)

// entry is the part of an OSV entry the indexes need.
type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
	} `json:"affected"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	// No "fixed": the client then fetches every entry of the module and
	// checks the entry's own ranges, which is always right. A wrong
	// "fixed" here would make it skip entries.
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type vulnMeta struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
}

// Stats says what Convert wrote.
type Stats struct {
	Entries  int
	Modules  int
	Modified time.Time
}

// Convert reads the OSV files in src (the vulndb module's data/osv) and
// writes the v1 layout into dst, which must not exist yet (the caller
// renames a finished dst into place, so a half-written database is never
// used). modified is the database's time (the module version's commit
// time); it also stands in for entries whose own "modified" is unset, as
// every entry in the module's data is.
func Convert(src, dst string, modified time.Time) (Stats, error) {
	names, err := filepath.Glob(filepath.Join(src, "*.json"))
	if err != nil {
		return Stats{}, err
	}
	if len(names) == 0 {
		return Stats{}, fmt.Errorf("%w in %s: expected data/osv of the golang.org/x/vulndb module", ErrNoEntries, src)
	}
	sort.Strings(names)
	if err := os.MkdirAll(filepath.Join(dst, "ID"), 0o755); err != nil {
		return Stats{}, err
	}
	if err := os.MkdirAll(filepath.Join(dst, "index"), 0o755); err != nil {
		return Stats{}, err
	}

	modules := map[string]*moduleMeta{}
	vulns := make([]vulnMeta, 0, len(names))
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return Stats{}, err
		}
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return Stats{}, fmt.Errorf("%w: %s: %v", ErrBadEntry, name, err)
		}
		if e.ID == "" || filepath.Base(name) != e.ID+".json" {
			return Stats{}, fmt.Errorf("%w: %s holds id %q: the file must be named <id>.json", ErrBadEntry, name, e.ID)
		}
		if e.Modified.IsZero() {
			e.Modified = modified
		}
		vulns = append(vulns, vulnMeta{ID: e.ID, Modified: e.Modified, Aliases: e.Aliases})
		seen := map[string]bool{}
		for _, a := range e.Affected {
			p := a.Package.Name
			if p == "" {
				return Stats{}, fmt.Errorf("%w: %s: an affected package has no name", ErrBadEntry, name)
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			m := modules[p]
			if m == nil {
				m = &moduleMeta{Path: p}
				modules[p] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified})
		}
		if err := os.WriteFile(filepath.Join(dst, "ID", e.ID+".json"), b, 0o644); err != nil {
			return Stats{}, err
		}
	}

	mods := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		mods = append(mods, m)
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Path < mods[j].Path })

	for _, f := range []struct {
		name string
		v    any
	}{
		{"db.json", struct {
			Modified time.Time `json:"modified"`
		}{modified}},
		{"modules.json", mods},
		{"vulns.json", vulns},
	} {
		b, err := json.Marshal(f.v)
		if err != nil {
			return Stats{}, err
		}
		if err := os.WriteFile(filepath.Join(dst, "index", f.name), b, 0o644); err != nil {
			return Stats{}, err
		}
	}
	return Stats{Entries: len(vulns), Modules: len(mods), Modified: modified}, nil
}

// InfoTime reads the commit time from a module version's .info file (the
// "Info" path that `go mod download -json` prints).
func InfoTime(path string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	var info struct {
		Version string
		Time    time.Time
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return time.Time{}, fmt.Errorf("vulndb: %s: %w", path, err)
	}
	if info.Time.IsZero() {
		return time.Time{}, fmt.Errorf("vulndb: %s has no Time: pass a module .info file", path)
	}
	return info.Time, nil
}
