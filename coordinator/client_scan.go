package coordinator

import (
	"context"
	"net/url"
	"strconv"
)

// CreateScan asks the targets to scan now.
func (c *Client) CreateScan(ctx context.Context, req ScanRequest) (*DeploymentView, error) {
	var out DeploymentView
	return &out, c.doJSON(ctx, "POST", "/v1/scans", req, &out)
}

func (f UpdatesFilter) query(format string) string {
	q := url.Values{}
	if f.Site != "" {
		q.Set("site", f.Site)
	}
	if f.Security {
		q.Set("security", strconv.FormatBool(true))
	}
	if format != "" {
		q.Set("format", format)
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// Updates lists the missing updates with the fleet's compliance.
func (c *Client) Updates(ctx context.Context, f UpdatesFilter) (*UpdatesReport, error) {
	var out UpdatesReport
	return &out, c.doJSON(ctx, "GET", "/v1/updates"+f.query(""), nil, &out)
}

// UpdatesCSV returns the audit export (see Coordinator.UpdatesCSV).
func (c *Client) UpdatesCSV(ctx context.Context, f UpdatesFilter) ([]byte, error) {
	var out []byte
	return out, c.doJSON(ctx, "GET", "/v1/updates"+f.query("csv"), nil, &out)
}

// NodeUpdates shows a node with its latest scan.
func (c *Client) NodeUpdates(ctx context.Context, id string) (*NodeUpdates, error) {
	var out NodeUpdates
	return &out, c.doJSON(ctx, "GET", "/v1/nodes/"+url.PathEscape(id)+"/updates", nil, &out)
}

// Inventory returns a node's latest scan with its installed packages.
func (c *Client) Inventory(ctx context.Context, id string) (*ScanRecord, error) {
	var out ScanRecord
	return &out, c.doJSON(ctx, "GET", "/v1/nodes/"+url.PathEscape(id)+"/inventory", nil, &out)
}
