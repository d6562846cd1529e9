package coordinator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/version"
)

// get fetches path from the admin listener with token ("" for none).
func get(t *testing.T, h *harness, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(h.ctx, "GET", h.c.AdminURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{Transport: newTransport()}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHealthNeedsNoToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.clk.Advance(90 * time.Second)
	for _, token := range []string{"", "wrong-token-wrong-token"} {
		code, body := get(t, h, "/v1/health", token)
		if code != http.StatusOK {
			t.Fatalf("health with token %q: %d %s", token, code, body)
		}
		var hl Health
		if err := json.Unmarshal([]byte(body), &hl); err != nil {
			t.Fatal(err)
		}
		if !hl.OK || hl.Version != version.String() || hl.UptimeSeconds != 90 {
			t.Errorf("health %+v", hl)
		}
		// Nothing that names or locates the coordinator, nor the token.
		for _, secret := range []string{h.c.Host().ID().String(), h.c.AdminToken(), "/ip4/", "127.0.0.1", "peer", "p2p"} {
			if strings.Contains(body, secret) {
				t.Errorf("health without the token shows %q: %s", secret, body)
			}
		}
	}
	code, body := get(t, h, "/v1/health", h.c.AdminToken())
	var hl Health
	if err := json.Unmarshal([]byte(body), &hl); err != nil || code != http.StatusOK {
		t.Fatalf("health with the token: %d %s %v", code, body, err)
	}
	if hl.Peer != h.c.Host().ID().String() || len(hl.P2P) == 0 {
		t.Errorf("health with the token: %+v, want the peer ID and addresses", hl)
	}
	// The rest of the API still wants the token.
	if code, _ := get(t, h, "/v1/stats", ""); code != http.StatusUnauthorized {
		t.Errorf("/v1/stats without a token: %d", code)
	}
}

// metricValue finds `name{labels} value` in a Prometheus text page.
func metricValue(t *testing.T, page, series string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(page)
	if m == nil {
		t.Errorf("no series %s", series)
		return ""
	}
	return m[1]
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := newFakeNode(t, h, "a1")
	a.mustEnroll(h.token(TokenRequest{Site: "a"}))
	b := newFakeNode(t, h, "b1")
	b.mustEnroll(h.token(TokenRequest{Site: "b"}))
	pkg := h.publishExecute("tool")
	d, err := h.cl.CreateDeployment(h.ctx, DeployRequest{Packages: []string{pkg}, All: true})
	if err != nil {
		t.Fatal(err)
	}
	a.report(d.ID, core.StateNotified, core.StateSuccess)
	// A report signed with another key is dropped; one sent again is a
	// duplicate.
	if _, err := a.send(a.sign(a.status(d.ID, core.StateSuccess, 0), b.key)); err != nil {
		t.Fatal(err)
	}
	dup := a.sign(a.status(d.ID, core.StateSuccess, 0), a.key)
	for range 2 {
		if _, err := a.send(dup); err != nil {
			t.Fatal(err)
		}
	}
	// Traffic: b reports, restarts (its counters start again) and reports.
	syncTraffic := func(tr core.Traffic) {
		t.Helper()
		info := b.info()
		info.Traffic = &tr
		if _, err := h.c.Sync(b.ID(), &core.SyncRequest{Info: info}); err != nil {
			t.Fatal(err)
		}
	}
	syncTraffic(core.Traffic{FromCoordinator: 1000, FromSite: 50, ToSite: 7})
	syncTraffic(core.Traffic{FromCoordinator: 1500, FromSite: 50, ToSite: 7})
	syncTraffic(core.Traffic{FromCoordinator: 200, FromOtherSites: 30}) // restarted

	code, page := get(t, h, "/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics without a token: %d %s", code, page)
	}
	t.Logf("/metrics (relaymesh_ series):\n%s", grepLines(page, "relaymesh_"))
	for series, want := range map[string]string{
		`relaymesh_deployments{state="RUNNING"}`:                         "1",
		`relaymesh_deployments{state="COMPLETED"}`:                       "0",
		`relaymesh_deployment_rows{state="SUCCESS"}`:                     "1",
		`relaymesh_deployment_rows{state="WAITING_NOTIFICATION"}`:        "1",
		`relaymesh_nodes{alive="true"}`:                                  "2",
		`relaymesh_node_versions{version="test"}`:                        "2",
		`relaymesh_status_reports_total{result="applied"}`:               "3",
		`relaymesh_status_reports_total{result="duplicate"}`:             "1",
		`relaymesh_status_reports_dropped_total{reason="bad_signature"}`: "1",
		`relaymesh_fleet_received_bytes_total{from="coordinator"}`:       "1700",
		`relaymesh_fleet_received_bytes_total{from="other_site"}`:        "30",
		`relaymesh_fleet_received_bytes_total{from="site"}`:              "50",
		`relaymesh_fleet_sent_bytes_total{to="site"}`:                    "7",
	} {
		if got := metricValue(t, page, series); got != "" && got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
	if v := metricValue(t, page, `relaymesh_coordinator_bytes_total{direction="sent",peer="node"}`); v == "0" {
		t.Errorf("coordinator sent no bytes to nodes")
	}
	for _, s := range []string{"go_goroutines", "process_start_time_seconds"} {
		if !strings.Contains(page, "\n"+s+" ") {
			t.Errorf("no %s", s)
		}
	}
	for _, secret := range []string{a.ID(), b.ID(), "a1", h.c.AdminToken()} {
		if strings.Contains(page, secret) {
			t.Errorf("/metrics shows %q", secret)
		}
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// With the web console mounted, health and metrics are still served, and
// the console does not see them.
func TestPublicPathsBesideConsole(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Init(dir); err != nil {
		t.Fatal(err)
	}
	cfg := TestConfig(dir)
	cfg.Logger = testLogger(t)
	cfg.Console = func(*Coordinator) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	}
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Start(ctx); err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := &harness{t: t, c: c, ctx: ctx}
	for path, want := range map[string]int{"/v1/health": 200, "/metrics": 200, "/": http.StatusTeapot, "/v1/nodes": 401} {
		if code, body := get(t, h, path, ""); code != want {
			t.Errorf("GET %s = %d %.80s, want %d", path, code, body, want)
		}
	}
}
