package vulndb

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeOSV(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestConvertWritesTheV1Layout(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	// As in the vulndb module's data/osv: "modified" is unset, and one
	// report can name two modules (the standard library and x/net).
	writeOSV(t, src, "GO-2026-0001.json", `{"id":"GO-2026-0001","modified":"0001-01-01T00:00:00Z","aliases":["CVE-2026-1"],
		"affected":[{"package":{"name":"stdlib","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.26.9"}]}]},
		            {"package":{"name":"golang.org/x/net","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.60.0"}]}]}]}`)
	writeOSV(t, src, "GO-2026-0002.json", `{"id":"GO-2026-0002","modified":"2026-10-01T00:00:00Z",
		"affected":[{"package":{"name":"golang.org/x/net","ecosystem":"Go"}},{"package":{"name":"golang.org/x/net","ecosystem":"Go"}}]}`)
	writeOSV(t, src, "README.md", "not an entry")
	dst := filepath.Join(t.TempDir(), "db")
	when := time.Date(2026, 11, 5, 23, 49, 57, 0, time.UTC)

	st, err := Convert(src, dst, when)
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 2 || st.Modules != 2 {
		t.Errorf("stats %+v, want 2 entries in 2 modules", st)
	}

	var db struct{ Modified time.Time }
	readJSON(t, filepath.Join(dst, "index", "db.json"), &db)
	if !db.Modified.Equal(when) {
		t.Errorf("db modified %v, want %v", db.Modified, when)
	}
	var mods []moduleMeta
	readJSON(t, filepath.Join(dst, "index", "modules.json"), &mods)
	if len(mods) != 2 || mods[0].Path != "golang.org/x/net" || mods[1].Path != "stdlib" {
		t.Fatalf("modules %+v, want golang.org/x/net then stdlib", mods)
	}
	if got := mods[0].Vulns; len(got) != 2 || got[0].ID != "GO-2026-0001" || got[1].ID != "GO-2026-0002" {
		t.Errorf("x/net vulns %+v: want GO-2026-0001 and GO-2026-0002, once each", got)
	}
	if got := mods[1].Vulns; len(got) != 1 || !got[0].Modified.Equal(when) {
		t.Errorf("stdlib vulns %+v: want GO-2026-0001 dated by the database", got)
	}
	if got := mods[0].Vulns[1].Modified; !got.Equal(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("an entry's own modified time was replaced: %v", got)
	}
	var vulns []vulnMeta
	readJSON(t, filepath.Join(dst, "index", "vulns.json"), &vulns)
	if len(vulns) != 2 || vulns[0].Aliases[0] != "CVE-2026-1" {
		t.Errorf("vulns %+v", vulns)
	}
	// The entries are copied byte for byte: the ranges govulncheck
	// matches versions against are the module's own.
	for _, id := range []string{"GO-2026-0001", "GO-2026-0002"} {
		want, _ := os.ReadFile(filepath.Join(src, id+".json"))
		got, err := os.ReadFile(filepath.Join(dst, "ID", id+".json"))
		if err != nil || string(got) != string(want) {
			t.Errorf("ID/%s.json differs from the source (err %v)", id, err)
		}
	}
}

func TestConvertRefusesBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, body string
		want             error
	}{
		{"no entries", "", "", ErrNoEntries},
		{"not JSON", "GO-2026-0001.json", "{", ErrBadEntry},
		{"name and id differ", "GO-2026-0001.json", `{"id":"GO-2026-0002","affected":[]}`, ErrBadEntry},
		{"no id", "GO-2026-0001.json", `{"affected":[]}`, ErrBadEntry},
		{"unnamed package", "GO-2026-0001.json", `{"id":"GO-2026-0001","affected":[{"package":{}}]}`, ErrBadEntry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := t.TempDir()
			if tc.file != "" {
				writeOSV(t, src, tc.file, tc.body)
			}
			_, err := Convert(src, filepath.Join(t.TempDir(), "db"), time.Now())
			if !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestInfoTime(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.info")
	writeOSV(t, dir, "good.info", `{"Version":"v0.0.0-20261105234957-e22db6528018","Time":"2026-11-05T23:49:57Z"}`)
	got, err := InfoTime(good)
	if err != nil || !got.Equal(time.Date(2026, 11, 5, 23, 49, 57, 0, time.UTC)) {
		t.Errorf("InfoTime = %v, %v", got, err)
	}
	writeOSV(t, dir, "bad.info", `{"Version":"v1"}`)
	if _, err := InfoTime(filepath.Join(dir, "bad.info")); err == nil {
		t.Error("an .info file without Time was accepted")
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
