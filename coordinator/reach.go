package coordinator

import (
	"slices"
	"time"
)

// unreachableByLocked names the live members of n's site that last said
// they cannot connect to n (NodeInfo.Unreachable), sorted; nil when none.
func (c *Coordinator) unreachableByLocked(n *NodeRecord, now time.Time) []string {
	var out []string
	for _, m := range c.st.nodes {
		if len(m.Unreachable) == 0 || m.Site != n.Site || m.ID == n.ID || now.Sub(m.LastSeen) >= c.cfg.OnlineWindow {
			continue
		}
		if slices.Contains(m.Unreachable, n.ID) {
			out = append(out, m.Name)
		}
	}
	slices.Sort(out)
	return out
}
