package coordinator

import (
	"testing"
)

// A dry run resolves and checks like a create, answers with the targets
// and records, signs and dispatches nothing.
func TestDeployDryRunRecordsNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := newFakeNode(t, h, "lyon-1")
	a.mustEnroll(h.token(TokenRequest{Site: "lyon"}))
	b := newFakeNode(t, h, "paris-1")
	b.mustEnroll(h.token(TokenRequest{Site: "paris"}))
	pkg := h.publishExecute("tool")

	v, err := h.cl.CreateDeployment(h.ctx, DeployRequest{Packages: []string{pkg}, Sites: []string{"paris"}, Nodes: []string{"lyon-1"}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !v.DryRun || v.State != DeployDryRun || v.ID != "" || v.Seq != 0 || v.Targets != 2 {
		t.Errorf("dry run view %+v", v)
	}
	if len(v.Resolved) != 2 || v.Resolved[0].Name != "lyon-1" || v.Resolved[0].Site != "lyon" || v.Resolved[0].ID != a.ID() ||
		v.Resolved[1].Name != "paris-1" || v.Resolved[1].ID != b.ID() {
		t.Errorf("resolved %+v: want lyon-1 then paris-1", v.Resolved)
	}
	if st := h.c.Stats(); st.Deployments != 0 {
		t.Errorf("%d deployments after a dry run", st.Deployments)
	}
	if got := a.syncOrders(0); len(got) != 0 {
		t.Errorf("a dry run reached a node: %d orders", len(got))
	}
	if _, err := h.cl.CreateDeployment(h.ctx, DeployRequest{Packages: []string{pkg}, Nodes: []string{"ghost"}, DryRun: true}); err == nil {
		t.Error("dry run to an unknown node: no error")
	}

	d, err := h.cl.CreateDeployment(h.ctx, DeployRequest{Packages: []string{pkg}, Nodes: []string{"lyon-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Seq != 1 || d.DryRun || len(d.Resolved) != 1 || d.Resolved[0].ID != a.ID() {
		t.Errorf("create after a dry run: seq %d dry %v resolved %+v", d.Seq, d.DryRun, d.Resolved)
	}
}
