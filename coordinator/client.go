package coordinator

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/relaymesh/relaymesh/core"
)

// ErrUnauthorized is returned by the client on a 401.
var ErrUnauthorized = errors.New("coordinator: admin token refused")

// Client talks to the admin API.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// NewClient makes a client; caFile, when set, is the PEM CA that signed
// the coordinator's TLS certificate.
func NewClient(baseURL, token, caFile string) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("coordinator URL %q: want http(s)://host:port", baseURL)
	}
	if token == "" {
		return nil, fmt.Errorf("no admin token: pass --token-file or set RELAYMESH_ADMIN_TOKEN")
	}
	hc := &http.Client{Timeout: 5 * time.Minute}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", caFile)
		}
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: hc}, nil
}

// AdminFromDir reads the admin URL and token a running coordinator wrote
// into its directory.
func AdminFromDir(dir string) (baseURL, token string, err error) {
	u, err := os.ReadFile(filepath.Join(dir, FileAdminAddr))
	if err != nil {
		return "", "", fmt.Errorf("%w: is the coordinator running? (%w)", ErrNotInitialised, err)
	}
	t, err := core.ReadSecretFile(filepath.Join(dir, FileAdminToken))
	if err != nil {
		return "", "", err
	}
	return strings.TrimSpace(string(u)), strings.TrimSpace(string(t)), nil
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, ctype string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("coordinator at %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e apiError
		_ = json.Unmarshal(b, &e)
		msg := e.Error
		if msg == "" {
			msg = strings.TrimSpace(string(b))
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("%w: %s", ErrUnauthorized, msg)
		case http.StatusNotFound:
			return fmt.Errorf("%w: %s", ErrNotFound, strings.TrimPrefix(msg, "coordinator: not found: "))
		case http.StatusConflict:
			return fmt.Errorf("%w: %s", ErrConflict, strings.TrimPrefix(msg, "coordinator: conflict: "))
		case http.StatusBadRequest:
			return fmt.Errorf("%w: %s", ErrBadRequest, strings.TrimPrefix(msg, "coordinator: bad request: "))
		case http.StatusBadGateway:
			return fmt.Errorf("%w: %s", ErrUpstream, strings.TrimPrefix(msg, "coordinator: repository: "))
		}
		return fmt.Errorf("coordinator: %s: %s", resp.Status, msg)
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, body, "application/json", out)
}

// CreateToken asks for a join token.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (*TokenResponse, error) {
	var out TokenResponse
	return &out, c.doJSON(ctx, "POST", "/v1/tokens", req, &out)
}

// Nodes lists nodes.
func (c *Client) Nodes(ctx context.Context) ([]NodeView, error) {
	var out []NodeView
	return out, c.doJSON(ctx, "GET", "/v1/nodes", nil, &out)
}

// Node shows one node.
func (c *Client) Node(ctx context.Context, id string) (*NodeView, error) {
	var out NodeView
	return &out, c.doJSON(ctx, "GET", "/v1/nodes/"+url.PathEscape(id), nil, &out)
}

// Sites lists sites.
func (c *Client) Sites(ctx context.Context) ([]SiteView, error) {
	var out []SiteView
	return out, c.doJSON(ctx, "GET", "/v1/sites", nil, &out)
}

// RotateSiteKey starts a gossip key rotation of site.
func (c *Client) RotateSiteKey(ctx context.Context, site string) (*KeyRotationView, error) {
	var out KeyRotationView
	return &out, c.doJSON(ctx, "POST", "/v1/sites/"+url.PathEscape(site)+"/rotate-key", nil, &out)
}

// Packages lists packages.
func (c *Client) Packages(ctx context.Context) ([]*PackageRecord, error) {
	var out []*PackageRecord
	return out, c.doJSON(ctx, "GET", "/v1/packages", nil, &out)
}

// Package shows one package.
func (c *Client) Package(ctx context.Context, id string) (*PackageRecord, error) {
	var out PackageRecord
	return &out, c.doJSON(ctx, "GET", "/v1/packages/"+url.PathEscape(id), nil, &out)
}

// DeletePackage deletes a package.
func (c *Client) DeletePackage(ctx context.Context, id string, force bool) error {
	return c.doJSON(ctx, "DELETE", fmt.Sprintf("/v1/packages/%s?force=%t", url.PathEscape(id), force), nil, nil)
}

// Missing returns which of cids the coordinator lacks.
func (c *Client) Missing(ctx context.Context, cids []string) ([]string, error) {
	var out struct {
		Missing []string `json:"missing"`
	}
	err := c.doJSON(ctx, "POST", "/v1/fragments/missing", map[string][]string{"cids": cids}, &out)
	return out.Missing, err
}

// PutFragment uploads one fragment.
func (c *Client) PutFragment(ctx context.Context, id cid.Cid, data []byte) error {
	return c.do(ctx, "PUT", "/v1/fragments/"+id.String(), bytes.NewReader(data), "application/octet-stream", nil)
}

// Publish uploads a manifest whose fragments are all uploaded.
func (c *Client) Publish(ctx context.Context, manifest []byte) (*PackageRecord, error) {
	var out PackageRecord
	return &out, c.do(ctx, "POST", "/v1/packages", bytes.NewReader(manifest), "application/json", &out)
}

// CreateDeployment creates a deployment.
func (c *Client) CreateDeployment(ctx context.Context, req DeployRequest) (*DeploymentView, error) {
	var out DeploymentView
	return &out, c.doJSON(ctx, "POST", "/v1/deployments", req, &out)
}

// Deployments lists deployments.
func (c *Client) Deployments(ctx context.Context) ([]*DeploymentView, error) {
	var out []*DeploymentView
	return out, c.doJSON(ctx, "GET", "/v1/deployments", nil, &out)
}

// Deployment shows one deployment with per-node rows.
func (c *Client) Deployment(ctx context.Context, id string) (*DeploymentView, error) {
	var out DeploymentView
	return &out, c.doJSON(ctx, "GET", "/v1/deployments/"+url.PathEscape(id), nil, &out)
}

// DeploymentArchive is Deployment with the rows deploy validate cleared.
func (c *Client) DeploymentArchive(ctx context.Context, id string) (*DeploymentView, error) {
	var out DeploymentView
	return &out, c.doJSON(ctx, "GET", "/v1/deployments/"+url.PathEscape(id)+"?archived=true", nil, &out)
}

// CancelDeployment cancels a deployment.
func (c *Client) CancelDeployment(ctx context.Context, id string) (*DeploymentView, error) {
	var out DeploymentView
	return &out, c.doJSON(ctx, "POST", "/v1/deployments/"+url.PathEscape(id)+"/cancel", nil, &out)
}

// ValidateDeployment clears SUCCESS rows (and, with all, never-notified nodes).
func (c *Client) ValidateDeployment(ctx context.Context, id string, all bool) (int, error) {
	var out struct {
		Cleared int `json:"cleared"`
	}
	err := c.doJSON(ctx, "POST", "/v1/deployments/"+url.PathEscape(id)+"/validate", map[string]bool{"all": all}, &out)
	return out.Cleared, err
}

// Stats returns the coordinator's counters.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var out Stats
	return &out, c.doJSON(ctx, "GET", "/v1/stats", nil, &out)
}
