package coordinator

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// Compliance, from each node's latest scan: a node is compliant when its
// last scan listed updates without an error and found none missing;
// security compliant when none of the missing ones is a security update.
// A node that never reported a scan, or whose last scan failed, is neither
// (unknown is not compliant).

// Compliance counts a set of nodes.
type Compliance struct {
	Nodes             int `json:"nodes"`
	Scanned           int `json:"scanned"` // with a scan that listed updates
	ScanFailed        int `json:"scan_failed,omitempty"`
	Compliant         int `json:"compliant"`
	SecurityCompliant int `json:"security_compliant"`
	// Percent and SecurityPercent are of Nodes, rounded down.
	Percent         int `json:"percent"`
	SecurityPercent int `json:"security_percent"`
	RebootRequired  int `json:"reboot_required,omitempty"`
	MissingUpdates  int `json:"missing_updates"` // node × update pairs
	MissingSecurity int `json:"missing_security"`
}

func (c *Compliance) add(rec *ScanRecord) {
	c.Nodes++
	switch {
	case rec == nil:
		return
	case rec.Report.Error != "":
		c.ScanFailed++
		return
	}
	c.Scanned++
	sec := rec.Report.SecurityCount()
	if len(rec.Report.Updates) == 0 {
		c.Compliant++
	}
	if sec == 0 {
		c.SecurityCompliant++
	}
	if rec.Report.RebootRequired {
		c.RebootRequired++
	}
	c.MissingUpdates += len(rec.Report.Updates)
	c.MissingSecurity += sec
}

func (c *Compliance) finish() {
	if c.Nodes > 0 {
		c.Percent = c.Compliant * 100 / c.Nodes
		c.SecurityPercent = c.SecurityCompliant * 100 / c.Nodes
	}
}

// UpdateView is one update (a package at a candidate version) and the
// nodes missing it.
type UpdateView struct {
	Package   string `json:"package"`
	Arch      string `json:"arch,omitempty"`
	Candidate string `json:"candidate"`
	Security  bool   `json:"security"`
	// Installed are the versions the nodes missing it have.
	Installed []string      `json:"installed"`
	Suites    []string      `json:"suites,omitempty"`
	Missing   int           `json:"missing"`
	Sites     []SiteMissing `json:"sites"`
	Nodes     []UpdateNode  `json:"nodes"`
}

// SiteMissing is how many of a site's nodes miss an update.
type SiteMissing struct {
	Site    string `json:"site"`
	Missing int    `json:"missing"`
}

// UpdateNode is one node missing an update.
type UpdateNode struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Site      string    `json:"site"`
	Installed string    `json:"installed"`
	Scanned   time.Time `json:"scanned"`
}

// UpdatesFilter narrows an updates listing.
type UpdatesFilter struct {
	Site     string
	Security bool // security updates only
}

// UpdatesReport is the fleet's updates with its compliance.
type UpdatesReport struct {
	Fleet   Compliance      `json:"fleet"`
	Sites   []SiteCompliant `json:"sites"`
	Updates []UpdateView    `json:"updates"`
}

// SiteCompliant is one site's compliance.
type SiteCompliant struct {
	Site string `json:"site"`
	Compliance
}

// Updates lists every missing update over the nodes the filter keeps,
// security updates first, then those most nodes miss.
func (c *Coordinator) Updates(f UpdatesFilter) *UpdatesReport {
	c.st.mu.RLock()
	defer c.st.mu.RUnlock()
	out := &UpdatesReport{Updates: []UpdateView{}, Sites: []SiteCompliant{}}
	sites := map[string]*SiteCompliant{}
	byKey := map[string]*UpdateView{}
	for _, n := range c.st.sortedNodes() {
		if f.Site != "" && n.Site != f.Site {
			continue
		}
		rec := c.st.scans[n.ID]
		out.Fleet.add(rec)
		sc := sites[n.Site]
		if sc == nil {
			sc = &SiteCompliant{Site: n.Site}
			sites[n.Site] = sc
		}
		sc.add(rec)
		if rec == nil {
			continue
		}
		for _, u := range rec.Report.Updates {
			if f.Security && !u.Security {
				continue
			}
			k := u.Name + "\x00" + u.Arch + "\x00" + u.Candidate
			v := byKey[k]
			if v == nil {
				v = &UpdateView{Package: u.Name, Arch: u.Arch, Candidate: u.Candidate}
				byKey[k] = v
			}
			v.Security = v.Security || u.Security
			if !slices.Contains(v.Installed, u.Installed) {
				v.Installed = append(v.Installed, u.Installed)
			}
			for _, s := range u.Suites {
				if !slices.Contains(v.Suites, s) {
					v.Suites = append(v.Suites, s)
				}
			}
			v.Missing++
			v.Nodes = append(v.Nodes, UpdateNode{ID: n.ID, Name: n.Name, Site: n.Site, Installed: u.Installed, Scanned: rec.Report.Time})
			if i := len(v.Sites) - 1; i >= 0 && v.Sites[i].Site == n.Site {
				v.Sites[i].Missing++
			} else {
				v.Sites = append(v.Sites, SiteMissing{Site: n.Site, Missing: 1})
			}
		}
	}
	out.Fleet.finish()
	for _, sc := range sites {
		sc.finish()
		out.Sites = append(out.Sites, *sc)
	}
	slices.SortFunc(out.Sites, func(a, b SiteCompliant) int { return strings.Compare(a.Site, b.Site) })
	for _, v := range byKey {
		slices.Sort(v.Installed)
		out.Updates = append(out.Updates, *v)
	}
	slices.SortFunc(out.Updates, func(a, b UpdateView) int {
		if a.Security != b.Security {
			if a.Security {
				return -1
			}
			return 1
		}
		return cmp.Or(b.Missing-a.Missing, strings.Compare(a.Package, b.Package),
			strings.Compare(a.Arch, b.Arch), strings.Compare(a.Candidate, b.Candidate))
	})
	return out
}

// siteComplianceLocked is the compliance of each site's nodes.
func (c *Coordinator) siteComplianceLocked() map[string]*Compliance {
	m := map[string]*Compliance{}
	for _, n := range c.st.nodes {
		sc := m[n.Site]
		if sc == nil {
			sc = &Compliance{}
			m[n.Site] = sc
		}
		sc.add(c.st.scans[n.ID])
	}
	for _, sc := range m {
		sc.finish()
	}
	return m
}

// NodeUpdates is a node with its latest scan.
type NodeUpdates struct {
	NodeView
	Scan *ScanRecord `json:"scan"` // nil: no scan reported yet
}

// NodeUpdates returns a node (by ID or name) with its latest scan,
// inventory list left out.
func (c *Coordinator) NodeUpdates(id string) (*NodeUpdates, error) {
	nv, err := c.Node(id)
	if err != nil {
		return nil, err
	}
	c.st.mu.RLock()
	defer c.st.mu.RUnlock()
	return &NodeUpdates{NodeView: *nv, Scan: c.st.scans[nv.ID]}, nil
}

// UpdatesCSV is the audit export: one row per node and missing update,
// and one row for each node with nothing missing ("compliant"), with no
// scan ("not scanned") or whose scan failed ("scan failed").
func (c *Coordinator) UpdatesCSV(f UpdatesFilter) ([]byte, error) {
	c.st.mu.RLock()
	defer c.st.mu.RUnlock()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"site", "node", "node_id", "status", "package", "arch", "installed", "candidate", "security", "suites", "scanned_at", "received_at", "detail"})
	for _, n := range c.st.sortedNodes() {
		if f.Site != "" && n.Site != f.Site {
			continue
		}
		rec := c.st.scans[n.ID]
		row := func(status string, u *core.Update, detail string) {
			r := []string{n.Site, n.Name, n.ID, status, "", "", "", "", "", "", "", "", detail}
			if rec != nil {
				r[10], r[11] = rec.Report.Time.Format(time.RFC3339), rec.Received.Format(time.RFC3339)
			}
			if u != nil {
				r[4], r[5], r[6], r[7] = u.Name, u.Arch, u.Installed, u.Candidate
				r[8], r[9] = strconv.FormatBool(u.Security), strings.Join(u.Suites, " ")
			}
			_ = w.Write(r)
		}
		switch {
		case rec == nil:
			row("not scanned", nil, "")
			continue
		case rec.Report.Error != "":
			row("scan failed", nil, rec.Report.Error)
			continue
		}
		k := 0
		for i := range rec.Report.Updates {
			u := &rec.Report.Updates[i]
			if f.Security && !u.Security {
				continue
			}
			row("missing", u, "")
			k++
		}
		if k == 0 {
			row("compliant", nil, "")
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("coordinator: updates csv: %w", err)
	}
	return buf.Bytes(), nil
}
