package console

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

func TestPagesNeedASession(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	for _, p := range []string{"/", "/fleet", "/packages", "/deployments", "/deployments/new", "/deployments/d-1"} {
		r := b.get(p)
		if r.code != http.StatusSeeOther || !strings.HasPrefix(r.h.Get("Location"), "/login?next=") {
			t.Errorf("GET %s without a session: %d Location %q, want 303 to /login", p, r.code, r.h.Get("Location"))
		}
	}
	for _, p := range []string{"/deployments", "/deployments/confirm", "/deployments/d-1/cancel", "/deployments/d-1/validate", "/logout"} {
		wantCode(t, b.post(p, url.Values{"csrf": {"x"}}), http.StatusForbidden, "not logged in")
	}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/deployments/d-1/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	wantCode(t, b.do(req), http.StatusUnauthorized)
}

func TestLogin(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	wantCode(t, b.get("/login?next=/packages"), http.StatusOK, `type="password"`, `value="/packages"`)
	r := b.postCSRF("/login", url.Values{"token": {"not-the-token-at-all"}, "next": {"/packages"}})
	wantCode(t, r, http.StatusUnauthorized, "wrong admin token", `value="/packages"`)
	if ck := r.h.Get("Set-Cookie"); strings.Contains(ck, cookieSession+"=") {
		t.Errorf("wrong token set a session cookie: %s", ck)
	}
	r = b.postCSRF("/login", url.Values{"token": {e.c.AdminToken()}, "next": {"/packages"}})
	if r.code != http.StatusSeeOther || r.h.Get("Location") != "/packages" {
		t.Fatalf("login: %d to %q, want 303 to /packages", r.code, r.h.Get("Location"))
	}
	var sess *http.Cookie
	for _, ck := range (&http.Response{Header: r.h}).Cookies() {
		if ck.Name == cookieSession && ck.Value != "" {
			sess = ck
		}
	}
	if sess == nil {
		t.Fatalf("no session cookie in %v", r.h["Set-Cookie"])
	}
	if !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Secure {
		t.Errorf("session cookie HttpOnly=%v SameSite=%v Secure=%v, want true, Strict, false over plain HTTP", sess.HttpOnly, sess.SameSite, sess.Secure)
	}
	if strings.Contains(r.h.Get("Location"), e.c.AdminToken()) || strings.Contains(sess.Value, e.c.AdminToken()) {
		t.Error("the admin token shows in a URL or the cookie")
	}
	wantCode(t, b.get("/packages"), http.StatusOK, "Packages")
}

func TestLoginRefusesNoCSRFAndOffsiteRedirect(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	b.get("/login")
	wantCode(t, b.post("/login", url.Values{"token": {e.c.AdminToken()}}), http.StatusForbidden, "CSRF")
	b.get("/login")
	r := b.postCSRF("/login", url.Values{"token": {e.c.AdminToken()}, "next": {"//evil.example/x"}})
	if r.code != http.StatusSeeOther || r.h.Get("Location") != "/fleet" {
		t.Fatalf("next //evil.example: %d to %q, want 303 to /fleet", r.code, r.h.Get("Location"))
	}
}

func TestSessionCookieSecureOverTLS(t *testing.T) {
	e := newEnv(t, true)
	b := e.browser()
	b.get("/login")
	r := b.postCSRF("/login", url.Values{"token": {e.c.AdminToken()}})
	var sess *http.Cookie
	for _, ck := range (&http.Response{Header: r.h}).Cookies() {
		if ck.Name == cookieSessionTLS {
			sess = ck
		}
	}
	if sess == nil || !sess.Secure || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/" {
		t.Fatalf("TLS session cookie %+v, want %s Secure HttpOnly SameSite=Strict Path=/", sess, cookieSessionTLS)
	}
	if r.h.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS header over TLS")
	}
	wantCode(t, b.get("/fleet"), http.StatusOK)
}

func TestLogout(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	b.login()
	u, _ := url.Parse(e.srv.URL)
	old := b.hc.Jar.Cookies(u)
	r := b.postCSRF("/logout", nil)
	if r.code != http.StatusSeeOther || r.h.Get("Location") != "/login" {
		t.Fatalf("logout: %d %q", r.code, r.h.Get("Location"))
	}
	if r := b.get("/fleet"); r.code != http.StatusSeeOther {
		t.Fatalf("after logout GET /fleet: %d, want 303 to login", r.code)
	}
	// The old cookie, replayed, is dead too.
	b.hc.Jar.SetCookies(u, old)
	if r := b.get("/fleet"); r.code != http.StatusSeeOther {
		t.Fatalf("old session cookie after logout: %d, want 303 to login", r.code)
	}
}

func TestSecurityHeadersAndNoInlineScript(t *testing.T) {
	e := newEnv(t, false)
	e.enroll("plant", nil, "linux", "p-1")
	pkg := e.publish("agent")
	dep := e.deploy(pkg, "p-1")
	b := e.browser()
	check := func(path string, r resp) {
		t.Helper()
		c := r.h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(c, want) {
				t.Errorf("%s: CSP %q lacks %q", path, c, want)
			}
		}
		if strings.Contains(c, "unsafe") {
			t.Errorf("%s: CSP %q allows unsafe sources", path, c)
		}
		if r.h.Get("X-Content-Type-Options") != "nosniff" || r.h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, r.h)
		}
		for _, bad := range []*regexp.Regexp{regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`), regexp.MustCompile(`<script>`),
			regexp.MustCompile(`\sstyle=`), regexp.MustCompile(`\son[a-z]+=`), regexp.MustCompile(`https?://`)} {
			if bad.MatchString(r.body) {
				t.Errorf("%s: page has %s (inline script/style, handler or external asset)", path, bad)
			}
		}
	}
	check("/login", b.get("/login"))
	if r := b.get("/static/"); r.code != http.StatusNotFound {
		t.Errorf("GET /static/: %d, want 404 (no listing)", r.code)
	}
	wantCode(t, b.get("/static/console.js"), http.StatusOK, "EventSource")
	b.login()
	for _, p := range []string{"/fleet", "/packages", "/deployments", "/deployments/new", "/deployments/" + dep, "/static/console.js", "/nope"} {
		check(p, b.get(p))
	}
}

func TestPostWithoutCSRFRefused(t *testing.T) {
	e := newEnv(t, false)
	e.enroll("plant", nil, "linux", "p-1")
	pkg := e.publish("agent")
	dep := e.deploy(pkg, "p-1")
	b := e.browser()
	b.login()
	good := b.csrf
	for name, form := range map[string]url.Values{"none": {}, "wrong": {"csrf": {strings.Repeat("0", 64)}}} {
		wantCode(t, b.post("/deployments/"+dep+"/cancel", form), http.StatusForbidden, "CSRF token is missing or wrong")
		v, _ := e.c.Deployment(dep)
		if v.State == coordinator.DeployCancelled {
			t.Fatalf("%s CSRF token: the deployment was cancelled", name)
		}
	}
	// A token from another origin's page is refused by Origin too.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/deployments/"+dep+"/cancel", strings.NewReader("csrf="+good))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	wantCode(t, b.do(req), http.StatusForbidden, "another origin")
	if v, _ := e.c.Deployment(dep); v.State == coordinator.DeployCancelled {
		t.Fatal("a cross-origin POST cancelled the deployment")
	}
}

func TestFleetSearch(t *testing.T) {
	e := newEnv(t, false)
	e.enroll("plant", []string{"prod"}, "linux", "plant-1", "plant-2")
	e.enroll("store", []string{"pos"}, "windows", "store-1")
	e.enroll("lab", nil, "linux", "<img src=x onerror=alert(1)>")
	e.publish("agent")
	b := e.browser()
	b.login()
	rows := func(r resp) []string {
		var out []string
		for _, m := range regexp.MustCompile(`<th scope="row">([^<]*)</th>`).FindAllStringSubmatch(r.body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	all := b.get("/fleet")
	wantCode(t, all, http.StatusOK, "plant", "store", "0.9.1", "4 of 4 nodes", "&lt;img src=x onerror=alert(1)&gt;")
	if strings.Contains(all.body, "<img src=x") {
		t.Fatal("a node name went into the page unescaped")
	}
	for q, want := range map[string]string{
		"q=plant-2":                        "plant-2",
		"site=store":                       "store-1",
		"tag=prod":                         "plant-1 plant-2",
		"os=windows":                       "store-1",
		"state=offline":                    "",
		"state=alive&site=plant&q=plant-1": "plant-1",
	} {
		got := rows(b.get("/fleet?" + q))
		var nodes []string
		for _, g := range got {
			if g != "lab" && g != "plant" && g != "store" {
				nodes = append(nodes, g)
			}
		}
		if strings.Join(nodes, " ") != want {
			t.Errorf("/fleet?%s: rows %q, want %q", q, nodes, want)
		}
	}
	wantCode(t, b.get("/fleet?state=sleeping"), http.StatusBadRequest, `state &#34;sleeping&#34;: want one of alive, offline, relay, warning`)
}

func TestCreateWithConfirmation(t *testing.T) {
	e := newEnv(t, false)
	e.enroll("plant", []string{"prod"}, "linux", "plant-1", "plant-2")
	e.enroll("store", nil, "windows", "store-1")
	pkg := e.publish("agent")
	b := e.browser()
	b.login()
	wantCode(t, b.get("/deployments/new"), http.StatusOK, "agent 1.0", `<label for="window">`)
	form := url.Values{"package": {pkg}, "site": {"plant"}, "nodes": {"store-1"}, "os": {"linux"},
		"window": {"Sat 02:00-04:00"}, "priority": {"3"}, "mode": {"bulk"}, "reboot": {"if-needed"}}
	r := b.postCSRF("/deployments/confirm", form)
	wantCode(t, r, http.StatusOK, "Resolved targets", "plant-1", "plant-2", "bulk (first failure", "Sat 02:00-04:00")
	if strings.Contains(r.body, ">store-1<") {
		t.Error("confirmation lists store-1, which the OS filter drops")
	}
	if n := len(e.c.Deployments()); n != 0 {
		t.Fatalf("confirmation created %d deployments", n)
	}
	// "Change" posts the values back into the form.
	wantCode(t, b.postCSRF("/deployments/new", form), http.StatusOK, `value="Sat 02:00-04:00"`, `value="3"`)
	r = b.postCSRF("/deployments", form)
	if r.code != http.StatusSeeOther || !strings.HasPrefix(r.h.Get("Location"), "/deployments/d-") {
		t.Fatalf("create: %d %q %s", r.code, r.h.Get("Location"), r.body)
	}
	deps := e.c.Deployments()
	if len(deps) != 1 || deps[0].Targets != 2 || deps[0].Priority != 3 || deps[0].Window != "Sat 02:00-04:00" {
		t.Fatalf("created %+v", deps)
	}
	wantCode(t, b.get(r.h.Get("Location")), http.StatusOK, "created for 2 nodes", "WAITING_NOTIFICATION")
	wantCode(t, b.get("/deployments"), http.StatusOK, deps[0].ID, "agent 1.0")
}

func TestCreateRefusesBadInput(t *testing.T) {
	e := newEnv(t, false)
	e.enroll("plant", nil, "linux", "plant-1")
	pkg := e.publish("agent")
	b := e.browser()
	b.login()
	for _, c := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"package": {pkg}, "all": {"on"}, "priority": {"11"}}, `priority &#34;11&#34;: want a whole number from 0 to 10`},
		{url.Values{"all": {"on"}}, "no package chosen"},
		{url.Values{"package": {pkg}}, "give targets"},
		{url.Values{"package": {pkg}, "site": {"nowhere"}}, "nowhere"},
		{url.Values{"package": {pkg}, "all": {"on"}, "window": {"Xyz 01:00-02:00"}}, "Xyz"},
		{url.Values{"package": {pkg}, "all": {"on"}, "mode": {"sideways"}}, `mode &#34;sideways&#34;`},
		{url.Values{"package": {pkg}, "all": {"on"}, "expires": {"1000h"}}, "maximum order lifetime"},
	} {
		wantCode(t, b.postCSRF("/deployments/confirm", c.form), http.StatusBadRequest, c.want)
	}
	// What only CreateDeployment checks comes back on the form too.
	wantCode(t, b.postCSRF("/deployments", url.Values{"package": {pkg}, "all": {"on"}, "expires": {"1000h"}}),
		http.StatusBadRequest, "Not created", "maximum order lifetime", `value="1000h"`)
	if n := len(e.c.Deployments()); n != 0 {
		t.Fatalf("%d deployments created from bad input", n)
	}
}

func TestDeploymentPageShowsProgress(t *testing.T) {
	e := newEnv(t, false)
	e.enroll("plant", nil, "linux", "plant-1", "plant-2")
	e.enroll("store", nil, "linux", "store-1")
	pkg := e.publish("agent")
	dep := e.deploy(pkg, "plant-1", "plant-2", "store-1")
	e.report("plant-1", dep, core.StateSuccess, 0, "line 1\ninstalled agent", 4096)
	e.report("plant-2", dep, core.ErrExecute, 3, "boom", 2048)
	e.report("store-1", dep, core.StateDownloading, 0, "", 100)
	b := e.browser()
	b.login()
	r := b.get("/deployments/" + dep)
	wantCode(t, r, http.StatusOK, "RUNNING", "SUCCESS <b>1</b>", "ERR_EXECUTE <b>1</b>", "DOWNLOADING <b>1</b>",
		`aria-label="plant: 2 of 2 finished"`, "installed agent", "4.0 KiB", `<td class="num">3</td>`,
		"<svg", "Nodes finished over time: 2 of 3 finished, 1 succeeded", `data-live="/deployments/`+dep+`/events"`,
		`<meta http-equiv="refresh" content="5">`, "RUNNING: 2 of 3 nodes finished")
	wantCode(t, b.get("/deployments/"+dep+"/live"), http.StatusOK, "ERR_EXECUTE", "store-1")
	wantCode(t, b.get("/deployments/d-000000000000"), http.StatusNotFound, "deployment d-000000000000")
}

func TestEventsStreamUntilDone(t *testing.T) {
	e := newEnv(t, false)
	e.enroll("plant", nil, "linux", "plant-1")
	pkg := e.publish("agent")
	dep := e.deploy(pkg, "plant-1")
	b := e.browser()
	b.login()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/deployments/"+dep+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	// next reads one event: its name and its data lines joined.
	next := func() (string, string) {
		var name string
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "" && name != "":
				return name, strings.Join(data, "\n")
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = append(data, strings.TrimPrefix(line, "data: "))
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return "", ""
	}
	name, data := next()
	if name != "progress" || !strings.Contains(data, "WAITING_NOTIFICATION") {
		t.Fatalf("first event %s %q", name, data)
	}
	e.report("plant-1", dep, core.StateSuccess, 0, "done", 10)
	for {
		name, data = next()
		if name == "done" {
			break
		}
		if name != "progress" {
			t.Fatalf("event %q", name)
		}
		if !strings.Contains(data, "SUCCESS") {
			continue
		}
	}
	if data != coordinator.DeployCompleted {
		t.Fatalf("done event data %q, want COMPLETED", data)
	}
}

func TestCancelRefusalExplained(t *testing.T) {
	e := newEnv(t, false)
	e.enroll("plant", nil, "linux", "plant-1", "plant-2")
	pkg := e.publish("agent")
	busy := e.deploy(pkg, "plant-1")
	e.report("plant-1", busy, core.StateInstalling, 0, "", 0)
	idle := e.deploy(pkg, "plant-2")
	b := e.browser()
	b.login()
	r := b.postCSRF("/deployments/"+busy+"/cancel", nil)
	wantCode(t, r, http.StatusConflict, "Cancel refused", "is installing", "LanGuard", "wait until the installing nodes finish")
	if v, _ := e.c.Deployment(busy); v.State == coordinator.DeployCancelled {
		t.Fatal("refused cancel cancelled")
	}
	r = b.postCSRF("/deployments/"+idle+"/cancel", nil)
	if r.code != http.StatusSeeOther {
		t.Fatalf("cancel idle: %d %s", r.code, r.body)
	}
	wantCode(t, b.get("/deployments/"+idle), http.StatusOK, "cancelled: a signed cancel order", "CANCELLED")
	wantCode(t, b.postCSRF("/deployments/"+idle+"/cancel", nil), http.StatusConflict, "already cancelled")
	wantCode(t, b.postCSRF("/deployments/d-000000000000/cancel", nil), http.StatusNotFound)
}

func TestValidate(t *testing.T) {
	e := newEnv(t, false)
	e.enroll("plant", nil, "linux", "plant-1", "plant-2", "plant-3")
	pkg := e.publish("agent")
	dep := e.deploy(pkg, "plant-1", "plant-2", "plant-3")
	e.report("plant-1", dep, core.StateSuccess, 0, "", 0)
	e.report("plant-2", dep, core.StateNotified, 0, "", 0)
	b := e.browser()
	b.login()
	if r := b.postCSRF("/deployments/"+dep+"/validate", nil); r.code != http.StatusSeeOther {
		t.Fatalf("validate: %d %s", r.code, r.body)
	}
	wantCode(t, b.get("/deployments/"+dep), http.StatusOK, "Validated: 1 successful rows cleared", "1 validated")
	if r := b.postCSRF("/deployments/"+dep+"/validate", url.Values{"all": {"on"}}); r.code != http.StatusSeeOther {
		t.Fatalf("validate all: %d", r.code)
	}
	wantCode(t, b.get("/deployments/"+dep), http.StatusOK, "Validated: 1 successful rows and never-notified nodes cleared")
	if v, _ := e.c.Deployment(dep); v.Targets != 2 {
		t.Fatalf("after validate --all: %d targets, want 2 (plant-3 dropped)", v.Targets)
	}
}

func TestPackagesPage(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	b.login()
	wantCode(t, b.get("/packages"), http.StatusOK, "No package yet", "Updates and compliance", "No missing update in the nodes' last scans", "relaymesh updates list --csv")
	pkg := e.publish("agent")
	wantCode(t, b.get("/packages"), http.StatusOK, "agent", "execute", "/deployments/new?package="+pkg)
	wantCode(t, b.get("/deployments/new?package="+pkg), http.StatusOK, `value="`+pkg+`" selected`)
}

func TestMountedBesideTheAPI(t *testing.T) {
	dir := t.TempDir()
	if _, err := coordinator.Init(dir); err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.TestConfig(dir)
	cfg.Console = Handler
	c, err := coordinator.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer hc.CloseIdleConnections()
	get := func(path, auth string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, c.AdminURL()+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		r, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r
	}
	if r := get("/v1/nodes", ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("/v1/nodes without token: %d, want 401", r.StatusCode)
	}
	if r := get("/v1/nodes", c.AdminToken()); r.StatusCode != http.StatusOK {
		t.Errorf("/v1/nodes with token: %d", r.StatusCode)
	}
	if r := get("/", ""); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login?next=%2F" {
		t.Errorf("/: %d %q, want 303 to the login page", r.StatusCode, r.Header.Get("Location"))
	}
	// The bearer token is the JSON API's: it opens no console page.
	if r := get("/fleet", c.AdminToken()); r.StatusCode != http.StatusSeeOther {
		t.Errorf("/fleet with a bearer token: %d, want 303 to login", r.StatusCode)
	}
	if r := get("/login", ""); r.StatusCode != http.StatusOK || r.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("/login: %d CSP %q", r.StatusCode, r.Header.Get("Content-Security-Policy"))
	}
}

func TestLoginAttemptsAreLimited(t *testing.T) {
	e := newEnv(t, false)
	at := time.Now()
	e.k.opt.Now = func() time.Time { return at }
	b := e.browser()
	for i := range loginBurst {
		b.get("/login")
		wantCode(t, b.postCSRF("/login", url.Values{"token": {fmt.Sprintf("guess-%02d-xxxxxxxxxxxx", i)}}), http.StatusUnauthorized)
	}
	b.get("/login")
	wantCode(t, b.postCSRF("/login", url.Values{"token": {e.c.AdminToken()}}), http.StatusTooManyRequests, "too many login attempts")
	at = at.Add(time.Second)
	b.get("/login")
	if r := b.postCSRF("/login", url.Values{"token": {e.c.AdminToken()}}); r.code != http.StatusSeeOther {
		t.Fatalf("login a second later: %d, want 303", r.code)
	}
}

func TestFinishedDeploymentHasNoCancelButton(t *testing.T) {
	e := newEnv(t, false)
	e.enroll("plant", nil, "linux", "plant-1")
	pkg := e.publish("agent")
	dep := e.deploy(pkg, "plant-1")
	b := e.browser()
	b.login()
	wantCode(t, b.get("/deployments/"+dep), http.StatusOK, `id="cancel-form"`)
	e.report("plant-1", dep, core.StateSuccess, 0, "", 0)
	r := b.get("/deployments/" + dep)
	wantCode(t, r, http.StatusOK, "COMPLETED", "Validate")
	if strings.Contains(r.body, `id="cancel-form"`) {
		t.Error("a COMPLETED deployment still offers Cancel")
	}
}

func TestPlots(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	row := func(name, site string, st core.State, after time.Duration, fetched int64) coordinator.RowView {
		return coordinator.RowView{Name: name, Site: site, Row: coordinator.Row{State: st, Updated: t0.Add(after),
			LastReport: t0.Add(after), BytesFetched: fetched}}
	}
	v := &coordinator.DeploymentView{ID: "d-1", Created: t0, Nodes: []coordinator.RowView{
		row("a", "<b>evil</b>", core.StateSuccess, 2*time.Second, 300),
		row("b", "<b>evil</b>", core.ErrExecute, 4*time.Second, 300),
		row("c", "lab", core.StateDownloading, 0, 100),
	}}
	done := string(completionPlot(v, t0))
	for _, want := range []string{"2 of 3 finished, 1 succeeded", `class="line-done"`, `class="line-ok"`, "finished (2)", "succeeded (1)"} {
		if !strings.Contains(done, want) {
			t.Errorf("completion plot lacks %q:\n%s", want, done)
		}
	}
	bytes := string(bytesPlot(v, map[string]coordinator.SiteView{"<b>evil</b>": {WANIn: 300}, "lab": {WANIn: 100}}, 300))
	if strings.Contains(bytes, "<b>") || !strings.Contains(bytes, "&lt;b&gt;evil&lt;/b&gt;") {
		t.Errorf("site name not escaped in the bytes plot:\n%s", bytes)
	}
	for _, want := range []string{"nodes fetched 600 B", "WAN in 300 B", "package 300 B"} {
		if !strings.Contains(bytes, want) {
			t.Errorf("bytes plot lacks %q", want)
		}
	}
	if empty := string(completionPlot(&coordinator.DeploymentView{ID: "d-2"}, t0)); !strings.Contains(empty, "no node has finished yet") {
		t.Errorf("empty completion plot: %s", empty)
	}
}

// TestEventStreamEndsWithTheCoordinator: an open event stream does not
// hold the coordinator's Close (its HTTP shutdown waits for requests).
func TestEventStreamEndsWithTheCoordinator(t *testing.T) {
	dir := t.TempDir()
	if _, err := coordinator.Init(dir); err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.TestConfig(dir)
	cfg.PushTimeout = 200 * time.Millisecond
	cfg.Console = Handler
	c, err := coordinator.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, c: c, nodes: map[string]*fakeNode{}}
	e.enroll("plant", nil, "linux", "plant-1")
	dep := e.deploy(e.publish("agent"), "plant-1")
	// Log in on the admin listener itself.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	b := e.browserAt(c.AdminURL(), &http.Client{Transport: tr})
	b.login()
	req, _ := http.NewRequest(http.MethodGet, c.AdminURL()+"/deployments/"+dep+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if _, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil {
		t.Fatalf("first line of the stream: %v", err)
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatalf("Close with an event stream open: %v (after %s)", err, time.Since(start))
	}
}
