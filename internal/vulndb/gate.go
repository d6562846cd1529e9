package vulndb

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// The parts of govulncheck's -format json stream (golang.org/x/vuln's
// internal/govulncheck Message) that the gate reads.
type message struct {
	Config *struct {
		ScannerVersion string `json:"scanner_version"`
		DB             string `json:"db"`
		GoVersion      string `json:"go_version"`
		ScanLevel      string `json:"scan_level"`
	} `json:"config"`
	OSV *struct {
		ID      string   `json:"id"`
		Summary string   `json:"summary"`
		Aliases []string `json:"aliases"`
	} `json:"osv"`
	Finding *struct {
		OSV          string  `json:"osv"`
		FixedVersion string  `json:"fixed_version"`
		Trace        []frame `json:"trace"`
	} `json:"finding"`
}

type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
	Receiver string `json:"receiver"`
	Position *struct {
		Filename string `json:"filename"`
		Line     int    `json:"line"`
	} `json:"position"`
}

func (f frame) symbol() string {
	s := f.Package
	if f.Receiver != "" {
		s += "." + strings.TrimPrefix(f.Receiver, "*")
	}
	if f.Function != "" {
		s += "." + f.Function
	}
	if f.Position != nil && f.Position.Line > 0 {
		s += fmt.Sprintf(" (%s:%d)", f.Position.Filename, f.Position.Line)
	}
	return s
}

// Finding is one vulnerability govulncheck found, folded over its module,
// package and symbol level findings.
type Finding struct {
	ID      string
	Summary string
	Aliases []string
	Module  string // module path, "stdlib" for the standard library
	Version string // the version in the build
	Fixed   string // the first version with the fix, "" if there is none
	// Reachable is true when the scan found a call path from this
	// module's code to a vulnerable symbol (a symbol level finding).
	Reachable bool
	Trace     []string // vulnerable symbol first, our code last
}

// Report sorts what a scan found.
type Report struct {
	Scanner   string
	GoVersion string
	DB        string
	// Blocking: reachable, with a fix. These fail the build.
	Blocking []Finding
	// Unfixed: reachable, no fixed version exists yet. Reported only.
	Unfixed []Finding
	// Imported: in a module or package we use, but no call reaches the
	// vulnerable symbol. Reported only.
	Imported []Finding
}

// Gate reads govulncheck's JSON stream (govulncheck -format json) and sorts
// its findings. It fails on a stream that is not one (govulncheck failed
// before it scanned), so a broken scan never reads as a clean one.
func Gate(r io.Reader) (Report, error) {
	dec := json.NewDecoder(r)
	var rep Report
	configured := false
	summaries := map[string]*message{}
	byID := map[string]*Finding{}
	var order []string
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Report{}, fmt.Errorf("%w: %v", ErrNoScan, err)
		}
		switch {
		case m.Config != nil:
			configured = true
			rep.Scanner = m.Config.ScannerVersion
			rep.GoVersion = m.Config.GoVersion
			rep.DB = m.Config.DB
		case m.OSV != nil:
			mm := m
			summaries[m.OSV.ID] = &mm
		case m.Finding != nil:
			fd := m.Finding
			if len(fd.Trace) == 0 {
				return Report{}, fmt.Errorf("%w: finding %s has no trace", ErrNoScan, fd.OSV)
			}
			// One report can name several modules (golang.org/x/net and
			// the standard library's copy of it): each is its own finding.
			key := fd.OSV + " " + fd.Trace[0].Module
			f := byID[key]
			if f == nil {
				f = &Finding{ID: fd.OSV, Module: fd.Trace[0].Module, Version: fd.Trace[0].Version}
				byID[key] = f
				order = append(order, key)
			}
			if fd.FixedVersion != "" {
				f.Fixed = fd.FixedVersion
			}
			if fd.Trace[0].Function != "" && !f.Reachable {
				f.Reachable = true
				for _, fr := range fd.Trace {
					f.Trace = append(f.Trace, fr.symbol())
				}
			}
		}
	}
	if !configured {
		return Report{}, fmt.Errorf("%w: no config message (did govulncheck run with -format json?)", ErrNoScan)
	}
	sort.Strings(order)
	for _, key := range order {
		f := *byID[key]
		if s := summaries[f.ID]; s != nil {
			f.Summary, f.Aliases = s.OSV.Summary, s.OSV.Aliases
		}
		switch {
		case f.Reachable && f.Fixed != "":
			rep.Blocking = append(rep.Blocking, f)
		case f.Reachable:
			rep.Unfixed = append(rep.Unfixed, f)
		default:
			rep.Imported = append(rep.Imported, f)
		}
	}
	return rep, nil
}

// Write prints the report for a person: what blocks and how to fix it
// first, then what is only reported.
func (r Report) Write(w io.Writer) {
	fmt.Fprintf(w, "vulncheck: %s, %s, db %s\n", r.Scanner, r.GoVersion, r.DB)
	for _, f := range r.Blocking {
		fmt.Fprintf(w, "\nFAIL %s %s: %s\n", f.ID, strings.Join(f.Aliases, " "), f.Summary)
		fmt.Fprintf(w, "  found in %s, fixed in %s\n", f.at(), version(f.Module, f.Fixed))
		fmt.Fprintf(w, "  reached by %s\n", shortTrace(f.Trace))
		fmt.Fprintf(w, "  to fix: %s\n", remedy(f))
	}
	for _, f := range r.Unfixed {
		fmt.Fprintf(w, "\nnote %s: %s: reachable in %s, no fix released yet\n", f.ID, f.Summary, f.at())
	}
	if len(r.Imported) > 0 {
		ids := make([]string, 0, len(r.Imported))
		for _, f := range r.Imported {
			ids = append(ids, fmt.Sprintf("%s (%s)", f.ID, f.at()))
		}
		fmt.Fprintf(w, "\nnot reachable from our code, not failing: %s\n", strings.Join(ids, ", "))
	}
	fmt.Fprintf(w, "\n%d reachable with a fix (failing), %d reachable without a fix, %d not reachable\n",
		len(r.Blocking), len(r.Unfixed), len(r.Imported))
}

func isGo(module string) bool { return module == "stdlib" || module == "toolchain" }

// version names a version as people type it: go1.26.9 for Go itself
// (govulncheck writes v1.26.9), v1.20.2 for a module.
func version(module, v string) string {
	if isGo(module) {
		return "go" + strings.TrimPrefix(v, "v")
	}
	return v
}

func (f Finding) at() string {
	if isGo(f.Module) {
		return "Go " + version(f.Module, f.Version)
	}
	return f.Module + "@" + f.Version
}

// shortTrace keeps the vulnerable symbol and the last two calls, which
// are in our code: the middle is in the scan's JSON for whoever needs it.
func shortTrace(t []string) string {
	if len(t) <= 4 {
		return strings.Join(t, " <- ")
	}
	return fmt.Sprintf("%s <- (%d calls) <- %s", t[0], len(t)-3, strings.Join(t[len(t)-2:], " <- "))
}

func remedy(f Finding) string {
	if isGo(f.Module) {
		return fmt.Sprintf("build with %s or later (GOTOOLCHAIN in Makefile and .ci/run)", version(f.Module, f.Fixed))
	}
	return fmt.Sprintf("go get %s@%s && go mod tidy", f.Module, f.Fixed)
}
