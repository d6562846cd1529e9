package coordinator

import "fmt"

// ResolveTargets returns the nodes req would target if it were created
// now, resolved as CreateDeployment resolves them, without signing or
// recording anything: the console's confirmation page. Its packages must
// be published.
func (c *Coordinator) ResolveTargets(req DeployRequest) ([]NodeView, error) {
	c.st.mu.RLock()
	for _, p := range req.Packages {
		if c.st.packages[p] == nil {
			c.st.mu.RUnlock()
			return nil, fmt.Errorf("%w: package %s", ErrNotFound, p)
		}
	}
	ids, err := c.resolveLocked(req)
	c.st.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var out []NodeView
	for _, n := range c.Nodes() {
		if want[n.ID] {
			out = append(out, n)
		}
	}
	return out, nil
}
