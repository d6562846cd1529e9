package console

import (
	"context"
	"crypto/ed25519"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// env is a started coordinator, its console behind an httptest server,
// and fake nodes enrolled straight through Coordinator.Enroll.
type env struct {
	t     *testing.T
	c     *coordinator.Coordinator
	k     *Console
	srv   *httptest.Server
	nodes map[string]*fakeNode // by name
}

type fakeNode struct {
	id   string
	name string
	key  ed25519.PrivateKey
	seq  atomic.Uint64
}

func newEnv(t *testing.T, tls bool) *env {
	t.Helper()
	dir := t.TempDir()
	if _, err := coordinator.Init(dir); err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.TestConfig(dir)
	// Fake nodes have no host: pushes to them fail fast.
	cfg.PushTimeout = 200 * time.Millisecond
	c, err := coordinator.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		c.Close()
		t.Fatal(err)
	}
	e := &env{t: t, c: c, nodes: map[string]*fakeNode{}}
	e.k = New(c, Options{Poll: 20 * time.Millisecond})
	if tls {
		e.srv = httptest.NewTLSServer(e.k)
	} else {
		e.srv = httptest.NewServer(e.k)
	}
	t.Cleanup(func() {
		e.srv.Close()
		if err := c.Close(); err != nil {
			t.Errorf("coordinator Close: %v", err)
		}
	})
	return e
}

// enroll adds count nodes named site-1.. to site with tags.
func (e *env) enroll(site string, tags []string, osName string, names ...string) {
	e.t.Helper()
	tok, err := e.c.CreateToken(coordinator.TokenRequest{Site: site, Tags: tags, Uses: len(names)})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, name := range names {
		id, err := p2p.GenerateIdentity()
		if err != nil {
			e.t.Fatal(err)
		}
		pid, err := peer.IDFromPrivateKey(id)
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.c.Enroll(pid, &core.EnrollRequest{Token: tok.Token, Info: core.NodeInfo{
			Hostname: name, OS: osName, Arch: "amd64", Version: "0.9.1"}}); err != nil {
			e.t.Fatalf("enroll %s: %v", name, err)
		}
		e.nodes[name] = &fakeNode{id: pid.String(), name: name, key: p2p.Ed25519Raw(id)}
	}
}

// report sends a signed status for node on deployment dep.
func (e *env) report(name, dep string, st core.State, exit int, output string, fetched int64) {
	e.t.Helper()
	n := e.nodes[name]
	s := &core.Status{Schema: core.StatusSchema, NodeID: n.id, OrderID: dep, Seq: n.seq.Add(1), State: st,
		ExitCode: exit, Time: time.Now().UTC(), Output: output, BytesFetched: fetched}
	env, err := core.SignStatus(s, n.key)
	if err != nil {
		e.t.Fatal(err)
	}
	e.c.Intake([]*core.Envelope{env})
}

func (e *env) publish(name string) string {
	e.t.Helper()
	m := core.Manifest{Schema: core.ManifestSchema, Name: name, Version: "1.0", OS: "linux", Arch: "amd64",
		Action: core.ActionExecute, Command: []string{"/bin/true"}, Priority: 5}
	b, err := m.Encode()
	if err != nil {
		e.t.Fatal(err)
	}
	rec, err := e.c.PublishPackage(b)
	if err != nil {
		e.t.Fatal(err)
	}
	return rec.ID
}

func (e *env) deploy(pkg string, nodes ...string) string {
	e.t.Helper()
	v, err := e.c.CreateDeployment(coordinator.DeployRequest{Packages: []string{pkg}, Nodes: nodes})
	if err != nil {
		e.t.Fatal(err)
	}
	return v.ID
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t    *testing.T
	e    *env
	base string
	hc   *http.Client
	csrf string
}

func (e *env) browser() *browser { return e.browserAt(e.srv.URL, e.srv.Client()) }

func (e *env) browserAt(base string, hc *http.Client) *browser {
	jar, _ := cookiejar.New(nil)
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: e.t, e: e, base: base, hc: hc}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

type resp struct {
	code int
	body string
	h    http.Header
}

func (b *browser) do(req *http.Request) resp {
	b.t.Helper()
	r, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	if m := csrfRe.FindStringSubmatch(string(body)); m != nil {
		b.csrf = m[1]
	}
	return resp{r.StatusCode, string(body), r.Header}
}

func (b *browser) get(path string) resp {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) resp {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// postCSRF posts form with the last page's CSRF token.
func (b *browser) postCSRF(path string, form url.Values) resp {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.csrf)
	return b.post(path, form)
}

func (b *browser) login() {
	b.t.Helper()
	b.get("/login")
	r := b.postCSRF("/login", url.Values{"token": {b.e.c.AdminToken()}})
	if r.code != http.StatusSeeOther {
		b.t.Fatalf("login: %d %s", r.code, r.body)
	}
	b.get("/fleet") // a page of the session, for its CSRF token
}

func wantCode(t *testing.T, r resp, code int, contains ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d; body:\n%s", r.code, code, r.body)
	}
	for _, s := range contains {
		if !strings.Contains(r.body, s) {
			t.Errorf("body lacks %q:\n%s", s, r.body)
		}
	}
}
