package coordinator

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

func TestAdminAPIBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	n := newFakeNode(t, h, "a1")
	n.mustEnroll(h.token(TokenRequest{Site: "a"}))
	pkg := h.publishExecute("tool")
	unknownPkg := core.FragmentCID([]byte("no such manifest")).String()
	hc := &http.Client{Transport: newTransport()}
	t.Cleanup(hc.CloseIdleConnections)

	const good = "good"
	cases := []struct {
		name         string
		method, path string
		token        string // "" sends no Authorization header
		body         string
		code         int
		msg          string // the error message must contain it
	}{
		{"no token", "GET", "/v1/nodes", "", "", 401, "admin token"},
		{"wrong token", "GET", "/v1/nodes", "0123456789abcdef0123456789abcdef", "", 401, "admin token"},
		{"token not bearer", "GET", "/v1/nodes", "raw", "", 401, "admin token"},
		{"malformed json", "POST", "/v1/tokens", good, `{"site":`, 400, "bad request"},
		{"empty body", "POST", "/v1/tokens", good, ``, 400, "empty body"},
		{"trailing data", "POST", "/v1/tokens", good, `{"site":"a"} {}`, 400, "trailing data"},
		{"unknown field", "POST", "/v1/tokens", good, `{"site":"a","colour":"red"}`, 400, `unknown field "colour"`},
		{"wrong type", "POST", "/v1/tokens", good, `{"site":"a","uses":"many"}`, 400, `field "uses"`},
		{"wrong type in list", "POST", "/v1/deployments", good, `{"packages":"x","all":true}`, 400, `field "packages"`},
		{"bad site", "POST", "/v1/tokens", good, `{"site":"../etc"}`, 400, `site "../etc"`},
		{"negative uses", "POST", "/v1/tokens", good, `{"site":"a","uses":-1}`, 400, "uses -1"},
		{"bad expiry", "POST", "/v1/tokens", good, `{"site":"a","expires":"soon"}`, 400, `expires "soon"`},
		{"unknown package", "GET", "/v1/packages/" + unknownPkg, good, "", 404, unknownPkg},
		{"delete unknown package", "DELETE", "/v1/packages/" + unknownPkg, good, "", 404, unknownPkg},
		{"unknown deployment", "GET", "/v1/deployments/d-nope", good, "", 404, "d-nope"},
		{"cancel unknown deployment", "POST", "/v1/deployments/d-nope/cancel", good, "", 404, "d-nope"},
		{"validate unknown deployment", "POST", "/v1/deployments/d-nope/validate", good, `{"all":true}`, 404, "d-nope"},
		{"unknown node", "GET", "/v1/nodes/nope", good, "", 404, "node nope"},
		{"deploy without targets", "POST", "/v1/deployments", good, `{"packages":["` + pkg + `"]}`, 400, "give targets"},
		{"deploy without packages", "POST", "/v1/deployments", good, `{"all":true}`, 400, "at least one package"},
		{"deploy unknown package", "POST", "/v1/deployments", good, `{"packages":["` + unknownPkg + `"],"all":true}`, 404, unknownPkg},
		{"deploy bad not_before", "POST", "/v1/deployments", good, `{"packages":["` + pkg + `"],"all":true,"not_before":"tomorrow"}`, 400, "not_before"},
		{"deploy bad window", "POST", "/v1/deployments", good, `{"packages":["` + pkg + `"],"all":true,"window":"never"}`, 400, "never"},
		{"deploy bad priority", "POST", "/v1/deployments", good, `{"packages":["` + pkg + `"],"all":true,"priority":11}`, 400, "priority 11"},
		{"deploy bad reboot", "POST", "/v1/deployments", good, `{"packages":["` + pkg + `"],"all":true,"reboot":"sometimes"}`, 400, "sometimes"},
		{"deploy unknown node", "POST", "/v1/deployments", good, `{"packages":["` + pkg + `"],"nodes":["ghost"]}`, 400, `node "ghost"`},
		{"fragment bad cid", "PUT", "/v1/fragments/notacid", good, "x", 400, "bad request"},
		{"fragment wrong bytes", "PUT", "/v1/fragments/" + unknownPkg, good, "other bytes", 400, unknownPkg},
		{"missing bad cid", "POST", "/v1/fragments/missing", good, `{"cids":["notacid"]}`, 400, "bad request"},
		{"publish garbage", "POST", "/v1/packages", good, `{"schema":1}`, 400, "bad request"},
		{"unknown route", "GET", "/v1/nothing", good, "", 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(h.ctx, tc.method, h.c.AdminURL()+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			switch tc.token {
			case "":
			case good:
				req.Header.Set("Authorization", "Bearer "+h.c.AdminToken())
			case "raw":
				req.Header.Set("Authorization", h.c.AdminToken())
			default:
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, resp.StatusCode, b, tc.code)
			}
			if tc.msg == "" {
				return
			}
			var e apiError
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("error body %q is not JSON: %v", b, err)
			}
			if !strings.Contains(e.Error, tc.msg) {
				t.Errorf("error %q does not mention %q", e.Error, tc.msg)
			}
		})
	}
	// Nothing above changed the state.
	t.Cleanup(func() {
		if st := h.c.Stats(); st.Deployments != 0 || st.Packages != 1 || st.Nodes != 1 {
			t.Errorf("state after bad requests: %+v", st)
		}
	})
}

func TestClientErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	bad, err := NewClient(h.c.AdminURL(), "wrong-token-wrong-token", "")
	if err != nil {
		t.Fatal(err)
	}
	bad.HTTP.Transport = newTransport()
	t.Cleanup(bad.HTTP.CloseIdleConnections)
	_, err = bad.Nodes(h.ctx)
	checkErr(t, err, ErrUnauthorized, "admin token")

	for _, c := range []struct{ url, token string }{{"ftp://x", "t"}, {"http://", "t"}, {h.c.AdminURL(), ""}} {
		if _, err := NewClient(c.url, c.token, ""); err == nil {
			t.Errorf("NewClient(%q, %q) accepted", c.url, c.token)
		}
	}
	// The admin address and token a running coordinator leaves in its dir.
	u, tok, err := AdminFromDir(h.dir)
	if err != nil || u != h.c.AdminURL() || tok != h.c.AdminToken() {
		t.Errorf("AdminFromDir = %q %q %v", u, tok, err)
	}
	_, _, err = AdminFromDir(t.TempDir())
	checkErr(t, err, ErrNotInitialised)
	if b, err := os.ReadFile(filepath.Join(h.dir, FileP2PAddrs)); err != nil || !strings.Contains(string(b), h.c.Host().ID().String()) {
		t.Errorf("%s = %q, %v", FileP2PAddrs, b, err)
	}
}

func TestInitOpenConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := Open(TestConfig(dir))
	checkErr(t, err, ErrNotInitialised, "coordinator init")
	res, err := Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.PeerID == "" || len(res.OrderKey) != 64 {
		t.Errorf("Init = %+v", res)
	}
	_, err = Init(dir)
	checkErr(t, err, ErrConflict, "already holds a coordinator")
	for _, f := range []string{FileOrderKey, FileAdminToken, FileGossipKey, FileIdentity} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %v, mode %v; want private", f, err, fi.Mode())
		}
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatalf("LoadConfig of the written default: %v", err)
	}
	if want := DefaultConfig(dir); cfg.NoFeedback != want.NoFeedback || cfg.AdminAddr != want.AdminAddr {
		t.Errorf("loaded config %+v differs from the default", cfg)
	}
	if err := os.WriteFile(filepath.Join(dir, FileConfig), []byte("no_feedbak: 10s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadConfig(dir)
	checkErr(t, err, ErrBadConfig, "no_feedbak")

	// Open without Start: no network, but enrollment and intake work.
	c, err := Open(TestConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tok, err := c.CreateToken(TokenRequest{Site: "a"})
	if err != nil {
		t.Fatal(err)
	}
	nodes := newBenchNodes(t, 1)
	resp, err := c.Enroll(nodes[0].pid, &core.EnrollRequest{Token: tok.Token})
	if err != nil {
		t.Fatalf("Enroll before Start: %v", err)
	}
	if resp.Coordinator != res.PeerID {
		t.Errorf("enroll response names coordinator %s, want %s", resp.Coordinator, res.PeerID)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"dir", func(c *Config) { c.Dir = "" }, "dir"},
		{"listen empty", func(c *Config) { c.Listen = nil }, "listen"},
		{"listen bad", func(c *Config) { c.Listen = []string{"tcp://x"} }, "listen"},
		{"admin addr", func(c *Config) { c.AdminAddr = "localhost" }, "admin_addr"},
		{"tls half", func(c *Config) { c.TLSCert = "c.pem" }, "tls_cert"},
		{"upload", func(c *Config) { c.MaxUploadBps = -1 }, "max_upload_bps"},
		{"no feedback", func(c *Config) { c.NoFeedback = 0 }, "no_feedback"},
		{"sweep", func(c *Config) { c.SweepInterval = 0 }, "sweep_interval"},
		{"online", func(c *Config) { c.OnlineWindow = 0 }, "online_window"},
		{"push concurrency", func(c *Config) { c.PushConcurrency = 0 }, "push_concurrency"},
		{"push timeout", func(c *Config) { c.PushTimeout = 0 }, "push_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := TestConfig("/tmp/x")
			tc.edit(&c)
			checkErr(t, c.Validate(), ErrBadConfig, tc.field)
		})
	}
	for _, c := range []Config{DefaultConfig("/x"), TestConfig("/x")} {
		if err := c.Validate(); err != nil {
			t.Errorf("default config invalid: %v", err)
		}
	}
}

func TestMarkSeq(t *testing.T) {
	t.Parallel()
	var n NodeRecord
	for _, s := range []uint64{1, 3, 5, 2, 4, 7} {
		if n.seenSeq(s) {
			t.Fatalf("seq %d seen before it was marked", s)
		}
		n.markSeq(s)
		if !n.seenSeq(s) {
			t.Fatalf("seq %d not seen after it was marked", s)
		}
	}
	if n.Watermark != 5 || len(n.Above) != 1 || n.Above[0] != 7 || n.seenSeq(6) {
		t.Errorf("watermark %d above %v", n.Watermark, n.Above)
	}
}

// The byte meter asks whether a peer is enrolled on every stream read and
// write: the answer must not wait for the state lock (a status write
// held it and stalled the origin's uploads), and it must hold for nodes
// enrolled now and nodes loaded from disk.
func TestEnrolledWithoutStateLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Init(dir); err != nil {
		t.Fatal(err)
	}
	c, err := Open(TestConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.CreateToken(TokenRequest{Site: "a"})
	if err != nil {
		t.Fatal(err)
	}
	nodes := newBenchNodes(t, 2)
	if _, err := c.Enroll(nodes[0].pid, &core.EnrollRequest{Token: tok.Token}); err != nil {
		t.Fatal(err)
	}
	check := func(c *Coordinator) {
		t.Helper()
		c.st.mu.Lock()
		defer c.st.mu.Unlock()
		got := make(chan [2]bool, 1)
		go func() { got <- [2]bool{c.enrolled(nodes[0].pid), c.enrolled(nodes[1].pid)} }()
		select {
		case g := <-got:
			if !g[0] || g[1] {
				t.Errorf("enrolled: node 0 %v (want true), node 1 %v (want false)", g[0], g[1])
			}
		case <-time.After(10 * time.Second):
			t.Fatal("enrolled waited for the state lock")
		}
	}
	check(c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err = Open(TestConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	check(c)
}
