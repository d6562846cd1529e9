package coordinator

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// NodeLogs is what a node answered to `nodes logs`.
type NodeLogs struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Site string `json:"site"`
	core.LogsResponse
	// Incomplete: lines newer than since fell out of the node's buffer.
	Incomplete bool `json:"incomplete,omitempty"`
}

// nodeLogsTimeout bounds one logs request to one node.
const nodeLogsTimeout = 15 * time.Second

// NodeLogs asks a node (by name or ID) for its recent log records over the
// mesh: on the connection it holds to the coordinator when there is one,
// else by dialing the addresses it last reported. The stream is
// authenticated (Noise) as the node's peer ID; the node answers only its
// pinned coordinator.
func (c *Coordinator) NodeLogs(ctx context.Context, ref string, req core.LogsRequest) (*NodeLogs, error) {
	c.st.mu.RLock()
	n := c.findNodeLocked(ref)
	var out NodeLogs
	var addrs []string
	if n != nil {
		out.ID, out.Name, out.Site, addrs = n.ID, n.Name, n.Site, n.Addrs
	} else {
		err := c.unknownNode("logs", ref)
		c.st.mu.RUnlock()
		return nil, err
	}
	c.st.mu.RUnlock()
	pid, err := peer.Decode(out.ID)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, nodeLogsTimeout)
	defer cancel()
	if err := c.host.Connect(ctx, addrInfo(pid, addrs)); err != nil {
		return nil, fmt.Errorf("%w: node %q: %v: it must accept the coordinator on its libp2p port (or hold a connection to it)", ErrUnreachable, ref, err)
	}
	resp, err := p2p.Call[core.LogsRequest, core.LogsResponse](ctx, c.host, pid, core.ProtoLogs, &req, core.MaxLogResponse)
	if err != nil {
		return nil, fmt.Errorf("%w: node %q: logs: %v", ErrUnreachable, ref, err)
	}
	out.LogsResponse = *resp
	out.Incomplete = resp.Dropped > 0 && req.Since.Before(resp.Oldest)
	return &out, nil
}

// parseSince reads since=10m (that long ago) or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: since %q: want a duration (10m, 2h) or an RFC 3339 time (2026-12-02T17:00:00Z)", ErrBadRequest, s)
}

func (c *Coordinator) serveNodeLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := parseSince(q.Get("since"), c.now())
	if err != nil {
		writeErr(w, err)
		return
	}
	req := core.LogsRequest{Since: since, Level: q.Get("level")}
	switch req.Level {
	case "", "debug", "info", "warn", "error":
	default:
		writeErr(w, fmt.Errorf("%w: level %q: want debug, info, warn or error", ErrBadRequest, req.Level))
		return
	}
	if m := q.Get("max"); m != "" {
		if req.Max, err = strconv.Atoi(m); err != nil || req.Max < 0 {
			writeErr(w, fmt.Errorf("%w: max %q: want a count >= 0", ErrBadRequest, m))
			return
		}
	}
	responder{w, http.StatusOK}.send(c.NodeLogs(r.Context(), r.PathValue("id"), req))
}

// NodeLogs asks the coordinator for a node's recent logs; since is a
// duration ("10m") or an RFC 3339 time, level the lowest level wanted.
func (cl *Client) NodeLogs(ctx context.Context, ref, since, level string) (*NodeLogs, error) {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if level != "" {
		q.Set("level", level)
	}
	var out NodeLogs
	return &out, cl.doJSON(ctx, "GET", "/v1/nodes/"+url.PathEscape(ref)+"/logs?"+q.Encode(), nil, &out)
}
