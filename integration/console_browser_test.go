package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/relaymesh/relaymesh/console"
	"github.com/relaymesh/relaymesh/coordinator"
)

// findChromium returns the browser to drive: $RELAYMESH_CHROMIUM, else
// Debian's chromium on PATH. Under CI a missing browser fails the test
// (.ci/run installs it); elsewhere the test says why and skips.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("RELAYMESH_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on PATH (nor $RELAYMESH_CHROMIUM): install Debian's chromium (apt-get install chromium), as .ci/run does"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestConsoleInBrowser drives the web console in headless Chromium over a
// fleet of two sites: log in, create a deployment through the form and its
// confirmation, watch it reach COMPLETED on the page without a reload,
// cancel a scheduled one, and have a POST without the CSRF token refused.
// With RELAYMESH_CONSOLE_SCREENSHOTS=DIR it saves the main pages at 1280 px
// and 390 px wide as PNG files in DIR (docs/console is the committed set).
func TestConsoleInBrowser(t *testing.T) {
	chrome := findChromium(t)
	shots := os.Getenv("RELAYMESH_CONSOLE_SCREENSHOTS")
	started := time.Now()

	c := newCluster(t, func(cfg *coordinator.Config) {
		cfg.Console = func(co *coordinator.Coordinator) http.Handler {
			return console.New(co, console.Options{Poll: 100 * time.Millisecond})
		}
	})
	plant := c.addSite("plant", 2, nil)
	store := c.addSite("store", 2, nil)
	c.waitSites(map[string][]*testNode{"plant": plant, "store": store}, 30*time.Second)
	rec, _ := c.publish("agent", 3<<20)
	base := c.coord.AdminURL()
	t.Logf("fleet up in %s", time.Since(started).Round(time.Millisecond))

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	// Start the browser on bctx, so that per-step timeouts below do not
	// bind its life to theirs.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", chrome, err)
	}
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
		defer scancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			defer pcancel()
			loc, _ := chromedp.Run(pctx, chromedp.Location())
			body, _ := chromedp.Run(pctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
		}
	}
	eval := func(what, js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	shoot := func(name string) {
		t.Helper()
		if shots == "" {
			return
		}
		for _, w := range []int64{1280, 390} {
			do("viewport", chromedp.EmulateViewport(w, 800))
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatalf("screenshot %s: %v", name, err)
			}
			file := filepath.Join(shots, fmt.Sprintf("%s-%d.png", name, w))
			if err := os.WriteFile(file, png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		do("viewport", chromedp.EmulateViewport(1280, 900))
	}
	if shots != "" {
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// Log in: the console sends a stranger to the login page.
	do("open the console", chromedp.Navigate(base+"/deployments"), chromedp.WaitVisible(chromedp.ID("token")))
	shoot("login")
	do("log in", chromedp.SendKeys(chromedp.ID("token"), c.coord.AdminToken()),
		chromedp.Click(chromedp.CSS(`form.login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.Search(`a.button[href="/deployments/new"]`)))
	if loc := eval("location", `location.pathname + location.search`); loc != "/deployments" {
		t.Errorf("after login at %q, want /deployments (where we were going)", loc)
	}
	if cookie := eval("cookie", `document.cookie`); strings.Contains(cookie, "relaymesh_session") {
		t.Errorf("session cookie readable from script: %q", cookie)
	}

	do("fleet", chromedp.Navigate(base+"/fleet"), chromedp.WaitVisible(chromedp.ID("q")))
	eventuallyBrowser(t, ctx, "4 nodes alive on the fleet page", `document.body.innerText.includes("4 of 4 nodes") && document.querySelectorAll("span.pill.ok").length === 4`)
	// Keyboard: the first Tab reaches the skip link, Enter moves to the content.
	do("tab", chromedp.KeyEvent("\t"))
	if got := eval("focus", `document.activeElement.textContent`); got != "Skip to content" {
		t.Errorf("first Tab focuses %q, want the skip link", got)
	}
	do("enter", chromedp.KeyEvent("\r"))
	if got := eval("focus", `document.activeElement.id`); got != "main" {
		t.Errorf("Enter on the skip link focuses %q, want main", got)
	}
	do("search", chromedp.SendKeys(chromedp.ID("q"), "store-2"), chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(chromedp.Search(`//p[contains(., "1 of 4 nodes")]`)))

	// Create through the form and its confirmation. Not before a few
	// seconds ahead, so the page is open before any node can install.
	do("new", chromedp.Navigate(base+"/deployments/new"), chromedp.WaitVisible(chromedp.ID("package")))
	unlabelled := eval("labels", `Array.from(document.querySelectorAll("main input:not([type=hidden]), main select, main button"))
		.filter(e => e.labels.length === 0 && !e.getAttribute("aria-label") && !e.textContent.trim()).map(e => e.name || e.id).join(",")`)
	if unlabelled != "" {
		t.Errorf("controls without a label on the create form: %s", unlabelled)
	}
	shoot("new")
	notBefore := time.Now().UTC().Add(5 * time.Second).Format(time.RFC3339)
	do("fill the form", chromedp.SetValue(chromedp.ID("package"), rec.ID), chromedp.Click(chromedp.ID("all")),
		chromedp.SendKeys(chromedp.ID("not_before"), notBefore),
		chromedp.Click(chromedp.Search(`//button[contains(., "Review targets")]`)),
		chromedp.WaitVisible(chromedp.Search(`//caption[contains(., "Resolved targets")]`)))
	targets := eval("targets", `Array.from(document.querySelectorAll("tbody th")).map(e => e.textContent).join(" ")`)
	if targets != "plant-1 plant-2 store-1 store-2" {
		t.Fatalf("confirmation lists %q, want the 4 nodes", targets)
	}
	if n := len(c.coord.Deployments()); n != 0 {
		t.Fatalf("the confirmation page created %d deployments", n)
	}
	shoot("confirm")
	do("create", chromedp.Click(chromedp.Search(`//button[contains(., "Create deployment")]`)),
		chromedp.WaitVisible(chromedp.ID("live")))
	first := eval("state", `document.querySelector("#live [data-state]").dataset.state`)
	if first == coordinator.DeployCompleted {
		t.Fatalf("deployment COMPLETED before its page opened: the live update is not tested")
	}
	eval("mark", `(window.relaymeshNoReload = "yes")`)
	eventuallyBrowser(t, ctx, "COMPLETED on the page", `document.querySelector('#live [data-state="COMPLETED"]') !== null`)
	eventuallyBrowser(t, ctx, "the status line says COMPLETED", `document.getElementById("live-status").textContent.includes("COMPLETED")`)
	if eval("mark", `String(window.relaymeshNoReload)`) != "yes" {
		t.Error("the page reloaded to show progress; want live updates")
	}
	rows := eval("rows", `Array.from(document.querySelectorAll("#live tr[data-node] .pill")).map(e => e.textContent).join(" ")`)
	if rows != "SUCCESS SUCCESS SUCCESS SUCCESS" {
		t.Errorf("node rows %q, want 4 SUCCESS", rows)
	}
	if !strings.Contains(eval("plot", `document.querySelector("#live svg title").textContent`), "4 of 4 finished") {
		t.Error("completion plot does not say 4 of 4 finished")
	}
	t.Logf("deployment %s: %s when its page opened, COMPLETED on the page %s after the test started", c.coord.Deployments()[0].ID, first, time.Since(started).Round(time.Millisecond))
	shoot("deployment")
	do("fleet again", chromedp.Navigate(base+"/fleet"), chromedp.WaitVisible(chromedp.ID("q")))
	shoot("fleet")
	do("packages", chromedp.Navigate(base+"/packages"), chromedp.WaitVisible(chromedp.CSS("tbody tr")))
	shoot("packages")

	// Cancel a scheduled deployment from its page.
	later, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{rec.ID}, Sites: []string{"store"},
		NotBefore: time.Now().UTC().Add(time.Hour).Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	do("cancel", chromedp.Navigate(base+"/deployments/"+later.ID), chromedp.WaitVisible(chromedp.CSS("button.danger")),
		chromedp.Click(chromedp.CSS("button.danger")), chromedp.WaitVisible(chromedp.CSS("p.flash")))
	if got := eval("state", `document.querySelector("#live [data-state]").dataset.state`); got != coordinator.DeployCancelled {
		t.Errorf("after cancel the page shows %s", got)
	}
	if v, _ := c.coord.Deployment(later.ID); v.State != coordinator.DeployCancelled {
		t.Errorf("after cancel the coordinator has %s", v.State)
	}

	do("list", chromedp.Navigate(base+"/deployments"), chromedp.WaitVisible(chromedp.CSS("tbody tr")))
	shoot("deployments")

	// A same-origin POST with the session cookie but no CSRF token.
	status := eval("csrf-less post", `fetch("/deployments/`+later.ID+`/validate", {method: "POST",
		headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "all=on"}).then(r => String(r.status))`)
	if status != "403" {
		t.Errorf("POST without CSRF token: status %s, want 403", status)
	}

	// Log out: the session is gone.
	do("logout", chromedp.Click(chromedp.CSS("form.logout button")), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.Navigate(base+"/fleet"), chromedp.WaitVisible(chromedp.ID("token")))
	t.Logf("browser test done in %s", time.Since(started).Round(time.Millisecond))
}

// eventuallyBrowser waits until a JavaScript expression holds on the page.
func eventuallyBrowser(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	if _, err := chromedp.Run(wctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("waiting for %s: %v\npage:\n%s", what, err, body)
	}
}
