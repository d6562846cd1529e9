package vulndb

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func keys(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID+" "+f.Module+"@"+f.Version+" fixed "+f.Fixed)
	}
	return out
}

func scan(t *testing.T, name string) Report {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Gate(f)
	if err != nil {
		t.Fatalf("Gate(%s): %v", name, err)
	}
	return rep
}

// The scan of this module before item 14 (go1.26.8, x/net v0.58.0,
// klauspost/compress v1.19.1, pion/dtls v3.1.2, pion/stun v3.1.1), recorded
// with govulncheck v1.9.0 against the converted database and cut down to one
// module level and one symbol level finding per vulnerability and module.
func TestGateFailsOnTheScanBeforeTheUpdate(t *testing.T) {
	t.Parallel()
	rep := scan(t, "scan-go1.26.8-before.json")
	want := []string{
		"GO-2026-6163 github.com/pion/stun/v3@v3.1.1 fixed v3.1.5",
		"GO-2026-6165 github.com/pion/dtls/v3@v3.1.2 fixed v3.1.4",
		"GO-2026-6603 stdlib@v1.26.8 fixed v1.26.9",
		"GO-2026-6604 stdlib@v1.26.8 fixed v1.26.9",
		"GO-2026-6605 stdlib@v1.26.8 fixed v1.26.9",
		"GO-2026-6607 stdlib@v1.26.8 fixed v1.26.9",
		"GO-2026-6608 stdlib@v1.26.8 fixed v1.26.9",
		"GO-2026-6610 stdlib@v1.26.8 fixed v1.26.9",
		"GO-2026-6611 stdlib@v1.26.8 fixed v1.26.9",
		"GO-2026-6612 stdlib@v1.26.8 fixed v1.26.9",
		"GO-2026-6613 stdlib@v1.26.8 fixed v1.26.9",
		"GO-2026-6617 stdlib@v1.26.8 fixed v1.26.9",
		"GO-2026-6809 stdlib@v1.26.8 fixed v1.26.10",
		"GO-2026-6865 github.com/klauspost/compress@v1.19.1 fixed v1.20.2",
	}
	if got := keys(rep.Blocking); !slices.Equal(got, want) {
		t.Errorf("blocking findings:\n got %q\nwant %q", got, want)
	}
	// x/net v0.58.0 is vulnerable too, but our code reaches those symbols
	// only through the standard library's copy: reported, not failing.
	imported := strings.Join(keys(rep.Imported), "\n")
	for _, w := range []string{"GO-2026-6617 golang.org/x/net@v0.58.0", "GO-2026-5158 go.opentelemetry.io/otel@v1.41.0"} {
		if !strings.Contains(imported, w) {
			t.Errorf("imported findings lack %q:\n%s", w, imported)
		}
	}
	for _, f := range rep.Blocking {
		if len(f.Trace) < 2 {
			t.Errorf("%s: no call path: %q", f.ID, f.Trace)
		}
		if f.ID == "GO-2026-6865" && !strings.HasPrefix(f.Trace[len(f.Trace)-1], "github.com/relaymesh/relaymesh/cache.OpenBadger") {
			t.Errorf("%s: the path should start at cache.OpenBadger (badger compresses tables with zstd): %q", f.ID, f.Trace)
		}
	}

	var out bytes.Buffer
	rep.Write(&out)
	for _, w := range []string{
		"FAIL GO-2026-6865 CVE-2026-116591",
		"to fix: go get github.com/klauspost/compress@v1.20.2 && go mod tidy",
		"found in Go go1.26.8, fixed in go1.26.10",
		"to fix: build with go1.26.9 or later",
		"14 reachable with a fix (failing)",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("report lacks %q:\n%s", w, out.String())
		}
	}
}

// The same scan after the update and under GOTOOLCHAIN=go1.27.3.
func TestGatePassesTheScanAfterTheUpdate(t *testing.T) {
	t.Parallel()
	rep := scan(t, "scan-go1.27.3-after.json")
	if len(rep.Blocking)+len(rep.Unfixed)+len(rep.Imported) != 0 {
		t.Errorf("findings after the update: blocking %q unfixed %q imported %q", keys(rep.Blocking), keys(rep.Unfixed), keys(rep.Imported))
	}
	if rep.GoVersion != "go1.27.3" {
		t.Errorf("go version %q, want go1.27.3", rep.GoVersion)
	}
}

func TestGateSortsFindings(t *testing.T) {
	t.Parallel()
	const config = `{"config":{"scanner_version":"v1.9.0","go_version":"go1.27.3","db":"file:///db"}}`
	const osv = `{"osv":{"id":"GO-1","summary":"bad","aliases":["CVE-1"]}}`
	modLevel := func(id, fixed string) string {
		return `{"finding":{"osv":"` + id + `","fixed_version":"` + fixed + `","trace":[{"module":"example.com/m","version":"v1.0.0"}]}}`
	}
	pkgLevel := func(id, fixed string) string {
		return `{"finding":{"osv":"` + id + `","fixed_version":"` + fixed + `","trace":[{"module":"example.com/m","version":"v1.0.0","package":"example.com/m/p"}]}}`
	}
	symLevel := func(id, fixed string) string {
		return `{"finding":{"osv":"` + id + `","fixed_version":"` + fixed + `","trace":[` +
			`{"module":"example.com/m","version":"v1.0.0","package":"example.com/m/p","function":"Parse","receiver":"*T"},` +
			`{"module":"github.com/relaymesh/relaymesh","package":"github.com/relaymesh/relaymesh/node","function":"Run","position":{"filename":"node/run.go","line":7}}]}}`
	}
	for _, tc := range []struct {
		name                        string
		stream                      string
		blocking, unfixed, imported int
	}{
		{"reachable with a fix fails", config + osv + modLevel("GO-1", "v1.0.1") + pkgLevel("GO-1", "v1.0.1") + symLevel("GO-1", "v1.0.1"), 1, 0, 0},
		{"reachable without a fix is reported", config + modLevel("GO-1", "") + symLevel("GO-1", ""), 0, 1, 0},
		{"imported package only is reported", config + modLevel("GO-1", "v1.0.1") + pkgLevel("GO-1", "v1.0.1"), 0, 0, 1},
		{"required module only is reported", config + modLevel("GO-1", "v1.0.1"), 0, 0, 1},
		{"two vulnerabilities", config + symLevel("GO-1", "v1.0.1") + symLevel("GO-2", "v1.0.2") + pkgLevel("GO-3", ""), 2, 0, 1},
		{"clean scan", config, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rep, err := Gate(strings.NewReader(tc.stream))
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Blocking) != tc.blocking || len(rep.Unfixed) != tc.unfixed || len(rep.Imported) != tc.imported {
				t.Errorf("blocking %q unfixed %q imported %q, want %d/%d/%d",
					keys(rep.Blocking), keys(rep.Unfixed), keys(rep.Imported), tc.blocking, tc.unfixed, tc.imported)
			}
		})
	}

	rep, err := Gate(strings.NewReader(config + osv + symLevel("GO-1", "v1.0.1")))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Blocking) != 1 {
		t.Fatalf("blocking %q, want GO-1", keys(rep.Blocking))
	}
	f := rep.Blocking[0]
	if f.Summary != "bad" || f.Fixed != "v1.0.1" || f.Module != "example.com/m" ||
		!slices.Equal(f.Trace, []string{"example.com/m/p.T.Parse", "github.com/relaymesh/relaymesh/node.Run (node/run.go:7)"}) {
		t.Errorf("finding %+v", f)
	}
}

// A scan that did not run must never pass as a clean one.
func TestGateRefusesWhatIsNotAScan(t *testing.T) {
	t.Parallel()
	for name, stream := range map[string]string{
		"empty":             "",
		"text output":       "Scanning your code and 301 packages across 118 dependent modules for known vulnerabilities...\n",
		"no config":         `{"progress":{"message":"Scanning"}}`,
		"finding, no trace": `{"config":{}}{"finding":{"osv":"GO-1"}}`,
		"cut short":         `{"config":{}}{"finding":{"osv":"GO-1","trace":[{"module"`,
	} {
		if _, err := Gate(strings.NewReader(stream)); !errors.Is(err, ErrNoScan) {
			t.Errorf("%s: err %v, want ErrNoScan", name, err)
		}
	}
}
