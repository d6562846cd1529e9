package coordinator

import (
	"fmt"
	"slices"
	"strings"
)

// VersionCount is how many nodes last reported a relaymesh version.
type VersionCount struct {
	Version string `json:"version"`
	Nodes   int    `json:"nodes"`
}

// CountVersions counts nodes by version, most common first (then by
// version); a node that reported none counts as "unknown".
func CountVersions(versions []string) []VersionCount {
	m := map[string]int{}
	for _, v := range versions {
		if v == "" {
			v = "unknown"
		}
		m[v]++
	}
	out := make([]VersionCount, 0, len(m))
	for v, n := range m {
		out = append(out, VersionCount{v, n})
	}
	slices.SortFunc(out, func(a, b VersionCount) int {
		if a.Nodes != b.Nodes {
			return b.Nodes - a.Nodes
		}
		return strings.Compare(a.Version, b.Version)
	})
	return out
}

// FormatVersions is "v1.2 on 3 nodes, v1.1 on 1 node".
func FormatVersions(vs []VersionCount) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		unit := "nodes"
		if v.Nodes == 1 {
			unit = "node"
		}
		parts[i] = fmt.Sprintf("%s on %d %s", v.Version, v.Nodes, unit)
	}
	return strings.Join(parts, ", ")
}

// noteVersionsLocked logs when the set of versions the enrolled nodes run
// changes: a warning when the fleet becomes (or stays, with another set)
// mixed, an info line when it runs one version again. Counts moving while
// a rolling upgrade goes on are not news; a new version appearing or the
// last node of one leaving is. The caller holds st.mu.
func (c *Coordinator) noteVersionsLocked() {
	vs := make([]string, 0, len(c.st.nodes))
	for _, n := range c.st.nodes {
		vs = append(vs, n.Version)
	}
	counts := CountVersions(vs)
	names := make([]string, len(counts))
	for i, v := range counts {
		names[i] = v.Version
	}
	slices.Sort(names)
	set := strings.Join(names, " ")
	if set == c.fleetVersions {
		return
	}
	was := c.fleetVersions
	c.fleetVersions = set
	switch {
	case len(counts) > 1:
		c.log.Warn("fleet runs mixed versions", "versions", FormatVersions(counts))
	case len(counts) == 1 && strings.Contains(was, " "):
		c.log.Info("fleet runs one version again", "version", counts[0].Version, "nodes", counts[0].Nodes)
	}
}
