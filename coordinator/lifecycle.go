package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
)

// Fleet lifecycle: deleting a node that is gone for good, and revoking one
// whose key must never be trusted again.
//
// Both take the node out of st.nodes, st.pubkeys and st.known, so from the
// next stream on the coordinator resets its sync, status and fragment
// streams before reading them, targets and pushes skip it, and the member
// lists (built from st.nodes) leave it out. Both bump the membership
// version: site peers learn the new list on their next sync and their
// gaters and site views refuse the node. A deleted node's identity may
// enroll again with a new join token; a revoked one is kept in x/<id> and
// refused at enrollment for good.

const keyRevoked = "x/" // x/<node id> → RevokedNode

// RevokedNode is a revoked node's identity, kept so that it stays refused.
type RevokedNode struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Site    string    `json:"site"`
	Revoked time.Time `json:"revoked"`
	// Aborted counts the rows of unfinished deployments marked ERR_ABORTED.
	Aborted int `json:"aborted,omitempty"`
}

// DeleteResult tells what DeleteNode removed.
type DeleteResult struct {
	Node    NodeRecord `json:"node"`
	Aborted int        `json:"aborted"` // unfinished rows marked ERR_ABORTED (--force)
}

// revokedLog limits the "revoked node refused" line to one per node, kind
// of stream and minute: a revoked node keeps retrying its syncs and reports.
type revokedLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (l *revokedLog) due(id string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	if now.Sub(l.last[id]) < time.Minute {
		return false
	}
	l.last[id] = now
	return true
}

func loadRevoked(s *state, v []byte) error {
	var r RevokedNode
	if err := json.Unmarshal(v, &r); err != nil {
		return err
	}
	if s.revoked == nil {
		s.revoked = map[string]*RevokedNode{}
	}
	s.revoked[r.ID] = &r
	return nil
}

// findNodeLocked finds an enrolled node by ID or name.
func (c *Coordinator) findNodeLocked(ref string) *NodeRecord {
	if n := c.st.nodes[ref]; n != nil {
		return n
	}
	for _, n := range c.st.nodes {
		if n.Name != "" && n.Name == ref {
			return n
		}
	}
	return nil
}

// findRevokedLocked finds a revoked node by ID or name.
func (c *Coordinator) findRevokedLocked(ref string) *RevokedNode {
	if r := c.st.revoked[ref]; r != nil {
		return r
	}
	for _, r := range c.st.revoked {
		if r.Name != "" && r.Name == ref {
			return r
		}
	}
	return nil
}

func (c *Coordinator) unknownNode(op, ref string) error {
	if ref == "" {
		return fmt.Errorf("%w: nodes %s: give a node name or ID (relaymesh nodes list)", ErrBadRequest, op)
	}
	if r := c.findRevokedLocked(ref); r != nil {
		already := ""
		if op == "revoke" {
			already = "already "
		}
		return fmt.Errorf("%w: node %q (%s) was %srevoked at %s: its key stays refused", ErrConflict, ref, r.ID, already, r.Revoked.Format(time.RFC3339))
	}
	return fmt.Errorf("%w: node %q: no enrolled node has that name or ID (relaymesh nodes list)", ErrNotFound, ref)
}

// openRowsLocked lists the deployments whose row for node is unfinished
// while the deployment still runs (not cancelled, not expired).
func (c *Coordinator) openRowsLocked(node string, now time.Time) []string {
	var out []string
	for id, d := range c.st.deps {
		r := c.st.rows[id][node]
		if r == nil || r.State.Final() || d.Cancelled || !now.Before(d.Expires) {
			continue
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// abortRowsLocked returns the pairs and rows that mark node's unfinished
// rows ERR_ABORTED with detail.
func (c *Coordinator) abortRowsLocked(node, detail string, now time.Time) ([]kvPair, map[string]*Row) {
	var pairs []kvPair
	rows := map[string]*Row{}
	for id := range c.st.deps {
		r := c.st.rows[id][node]
		if r == nil || r.State.Final() {
			continue
		}
		cp := *r
		cp.State, cp.Detail, cp.Updated = core.ErrAborted, detail, now
		pairs = append(pairs, jsonPair(rowKey(id, node), &cp))
		rows[id] = &cp
	}
	return pairs, rows
}

// removeNodeLocked writes pairs with the node's removal and a new
// membership version, then forgets the node in memory.
func (c *Coordinator) removeNodeLocked(n *NodeRecord, pairs []kvPair, rows map[string]*Row) error {
	ver, verPair := c.bumpMembersLocked()
	pairs = append(pairs, kvPair{keyNode + n.ID, nil}, kvPair{keyScan + n.ID, nil}, verPair)
	if err := c.st.write(pairs...); err != nil {
		return err
	}
	for dep, r := range rows {
		c.st.rows[dep][n.ID] = r
	}
	delete(c.st.nodes, n.ID)
	delete(c.st.pubkeys, n.ID)
	delete(c.st.scans, n.ID)
	delete(c.st.savedSeen, n.ID)
	c.st.known.Delete(n.ID)
	c.st.members = ver
	c.noteVersionsLocked()
	return nil
}

// closePeer drops the coordinator's connections to a removed node.
func (c *Coordinator) closePeer(id string) {
	if c.host == nil {
		return
	}
	if pid, err := peer.Decode(id); err == nil {
		_ = c.host.Network().ClosePeer(pid)
	}
}

// DeleteNode removes a node that is gone for good. A node with an
// unfinished row in a running deployment is refused unless force: the
// deployment still waits for its report, which a deleted node can no
// longer send, and it may be installing right now. With force those rows
// are marked ERR_ABORTED "node deleted". Rows of other deployments stay
// as history. The node's identity may enroll again with a new token.
func (c *Coordinator) DeleteNode(ref string, force bool) (*DeleteResult, error) {
	now := c.now().UTC()
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	n := c.findNodeLocked(ref)
	if n == nil {
		if r := c.findRevokedLocked(ref); r != nil {
			return nil, fmt.Errorf("%w: node %q (%s) is revoked: it is out of the fleet already, and its revocation stays so that its key stays refused",
				ErrConflict, ref, r.ID)
		}
		return nil, c.unknownNode("delete", ref)
	}
	if open := c.openRowsLocked(n.ID, now); len(open) > 0 && !force {
		return nil, fmt.Errorf("%w: node %q has unfinished rows in running deployments %s: they wait for its report, and it may be installing now; "+
			"cancel them, wait, or give --force to mark its rows ERR_ABORTED", ErrConflict, ref, strings.Join(open, ", "))
	}
	pairs, rows := c.abortRowsLocked(n.ID, "node deleted at "+now.Format(time.RFC3339), now)
	if err := c.removeNodeLocked(n, pairs, rows); err != nil {
		return nil, err
	}
	c.closePeer(n.ID)
	c.log.Info("node deleted", "node", n.ID, "name", n.Name, "site", n.Site, "aborted_rows", len(rows))
	return &DeleteResult{Node: *n, Aborted: len(rows)}, nil
}

// RevokeNode revokes a node: its key and peer ID are refused from now on
// (sync, status, fragments, enrollment; site peers once they have the new
// member list), and its unfinished rows are marked ERR_ABORTED.
func (c *Coordinator) RevokeNode(ref string) (*RevokedNode, error) {
	now := c.now().UTC()
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	n := c.findNodeLocked(ref)
	if n == nil {
		return nil, c.unknownNode("revoke", ref)
	}
	pairs, rows := c.abortRowsLocked(n.ID, "node revoked at "+now.Format(time.RFC3339), now)
	r := &RevokedNode{ID: n.ID, Name: n.Name, Site: n.Site, Revoked: now, Aborted: len(rows)}
	pairs = append(pairs, jsonPair(keyRevoked+n.ID, r))
	if err := c.removeNodeLocked(n, pairs, rows); err != nil {
		return nil, err
	}
	if c.st.revoked == nil {
		c.st.revoked = map[string]*RevokedNode{}
	}
	c.st.revoked[n.ID] = r
	c.closePeer(n.ID)
	c.log.Warn("node revoked: its key is refused from now on", "node", n.ID, "name", n.Name, "site", n.Site, "aborted_rows", len(rows))
	return r, nil
}

// Revoked lists the revoked nodes, most recent first.
func (c *Coordinator) Revoked() []RevokedNode {
	c.st.mu.RLock()
	defer c.st.mu.RUnlock()
	out := make([]RevokedNode, 0, len(c.st.revoked))
	for _, r := range c.st.revoked {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b RevokedNode) int {
		if c := b.Revoked.Compare(a.Revoked); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// revokedLocked returns the revocation of id, or nil.
func (c *Coordinator) revokedLocked(id string) *RevokedNode { return c.st.revoked[id] }

// refuseRevoked logs, at most once a minute per node and what, that a revoked
// node's stream was refused; it reports whether id is revoked.
func (c *Coordinator) refuseRevoked(id, what string) bool {
	c.st.mu.RLock()
	r := c.revokedLocked(id)
	c.st.mu.RUnlock()
	if r == nil {
		return false
	}
	if c.revLog.due(id+" "+what, c.now()) {
		c.log.Warn("revoked node refused: its "+what+" is dropped", "node", id, "name", r.Name, "site", r.Site,
			"revoked", r.Revoked.Format(time.RFC3339))
	}
	return true
}

// stillEnrolledLocked reports whether the node of a verified report is
// still enrolled.
func (c *Coordinator) stillEnrolledLocked(r checked) bool {
	id := ""
	switch {
	case r.scan != nil:
		id = r.scan.NodeID
	case r.st != nil:
		id = r.st.NodeID
	}
	return c.st.nodes[id] != nil
}

// DeleteNode deletes a node by name or ID (force: even with unfinished
// rows in running deployments).
func (cl *Client) DeleteNode(ctx context.Context, ref string, force bool) (*DeleteResult, error) {
	var out DeleteResult
	return &out, cl.doJSON(ctx, "DELETE", fmt.Sprintf("/v1/nodes/%s?force=%t", url.PathEscape(ref), force), nil, &out)
}

// RevokeNode revokes a node by name or ID.
func (cl *Client) RevokeNode(ctx context.Context, ref string) (*RevokedNode, error) {
	var out RevokedNode
	return &out, cl.doJSON(ctx, "POST", "/v1/nodes/"+url.PathEscape(ref)+"/revoke", nil, &out)
}

// Revoked lists the revoked nodes.
func (cl *Client) Revoked(ctx context.Context) ([]RevokedNode, error) {
	var out []RevokedNode
	return out, cl.doJSON(ctx, "GET", "/v1/revoked", nil, &out)
}

func (c *Coordinator) lifecycleRoutes(mux *http.ServeMux) {
	mux.HandleFunc("DELETE /v1/nodes/{id}", func(w http.ResponseWriter, r *http.Request) {
		force, err := strconv.ParseBool(orDefault(r.URL.Query().Get("force"), "false"))
		if err != nil {
			writeErr(w, fmt.Errorf("%w: force=%q: want true or false", ErrBadRequest, r.URL.Query().Get("force")))
			return
		}
		responder{w, http.StatusOK}.send(c.DeleteNode(r.PathValue("id"), force))
	})
	mux.HandleFunc("POST /v1/nodes/{id}/revoke", func(w http.ResponseWriter, r *http.Request) {
		responder{w, http.StatusOK}.send(c.RevokeNode(r.PathValue("id")))
	})
	mux.HandleFunc("GET /v1/nodes/{id}/logs", c.serveNodeLogs)
	mux.HandleFunc("GET /v1/revoked", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Revoked())
	})
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
