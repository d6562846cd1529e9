package e2e

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestServeHasTheConsole: `coordinator serve` serves the web console on
// its admin listener beside the JSON API, and the admin token logs in.
func TestServeHasTheConsole(t *testing.T) {
	c := newCluster(t)
	c.startCoordinator()
	addr, err := os.ReadFile(filepath.Join(c.coord, "admin.addr"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(c.coord, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSpace(string(addr))
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Jar: jar, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		r, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r, string(b)
	}
	if r, _ := get("/"); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
		t.Fatalf("GET /: %d %q, want 303 to /login", r.StatusCode, r.Header.Get("Location"))
	}
	r, body := get("/login")
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET /login: %d CSP %q", r.StatusCode, r.Header.Get("Content-Security-Policy"))
	}
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on the login page:\n%s", body)
	}
	r, err = hc.PostForm(base+"/login", url.Values{"csrf": {m[1]}, "token": {strings.TrimSpace(string(tok))}})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /login: %d, want 303", r.StatusCode)
	}
	if r, body := get("/fleet"); r.StatusCode != http.StatusOK || !strings.Contains(body, "<h1>Fleet</h1>") {
		t.Fatalf("GET /fleet after login: %d\n%s", r.StatusCode, body)
	}
	// The JSON API is unchanged: bearer token, JSON errors.
	if r, body := get("/v1/nodes"); r.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "admin token") {
		t.Fatalf("GET /v1/nodes with a console session but no bearer token: %d %s", r.StatusCode, body)
	}
}
