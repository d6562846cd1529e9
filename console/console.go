// Package console is the coordinator's web console: server-rendered pages
// (html/template) over the coordinator's own functions, on the admin
// listener beside the JSON API. Live parts update through server-sent
// events and one small script; without script the pages still work.
package console

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"golang.org/x/time/rate"
)

// loginBurst login attempts may come at once; then one a second.
const loginBurst = 10

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options tune a console; the zero value is the production one.
type Options struct {
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration
	// Poll is how often a live page's event stream checks for changes
	// (default 1s).
	Poll time.Duration
	// StreamFor bounds one event stream; the browser reconnects (default 5m).
	StreamFor time.Duration
	Now       func() time.Time
	Logger    *slog.Logger
}

// Console serves the pages.
type Console struct {
	c     *coordinator.Coordinator
	opt   Options
	pages map[string]*template.Template
	live  *template.Template
	sess  *sessions
	mux   *http.ServeMux
	// logins bounds login attempts, so the admin token cannot be guessed
	// at network speed.
	logins *rate.Limiter
}

// Handler is the console of c with default options: the value
// `coordinator serve` puts in coordinator.Config.Console.
func Handler(c *coordinator.Coordinator) http.Handler { return New(c, Options{}) }

// New builds the console of c.
func New(c *coordinator.Coordinator, opt Options) *Console {
	if opt.SessionTTL <= 0 {
		opt.SessionTTL = 12 * time.Hour
	}
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	if opt.StreamFor <= 0 {
		opt.StreamFor = 5 * time.Minute
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	k := &Console{c: c, opt: opt, sess: &sessions{m: map[string]*session{}, ttl: opt.SessionTTL, now: opt.Now},
		logins: rate.NewLimiter(rate.Every(time.Second), loginBurst)}
	k.parse()
	k.routes()
	return k
}

var pageNames = []string{"login", "fleet", "deployments", "deployment", "new", "confirm", "packages", "error"}

func (k *Console) parse() {
	funcs := template.FuncMap{
		"bytes": humanBytes, "join": joinStrings, "stateClass": stateClass, "short": shortID,
		"when": k.when, "ratio": ratio, "has": has,
		"list": func(v ...string) []string { return v },
	}
	base := template.Must(template.New("base").Funcs(funcs).ParseFS(templateFS, "templates/base.html", "templates/live.html"))
	k.live = base.Lookup("live")
	k.pages = map[string]*template.Template{}
	for _, p := range pageNames {
		t := template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+p+".html"))
		k.pages[p] = t
	}
}

func (k *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	m.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	}))
	m.HandleFunc("GET /login", k.loginForm)
	m.HandleFunc("POST /login", k.login)
	m.Handle("POST /logout", k.post(k.logout))
	m.Handle("GET /{$}", k.get(func(w http.ResponseWriter, r *http.Request, _ *session) {
		http.Redirect(w, r, "/fleet", http.StatusSeeOther)
	}))
	m.Handle("GET /fleet", k.get(k.fleet))
	m.Handle("GET /packages", k.get(k.packages))
	m.Handle("GET /deployments", k.get(k.deployments))
	m.Handle("GET /deployments/new", k.get(k.newForm))
	m.Handle("POST /deployments/new", k.post(k.newForm))
	m.Handle("POST /deployments/confirm", k.post(k.confirm))
	m.Handle("POST /deployments", k.post(k.create))
	m.Handle("GET /deployments/{id}", k.get(k.deployment))
	m.Handle("GET /deployments/{id}/live", k.get(k.liveFragment))
	m.Handle("GET /deployments/{id}/events", k.get(k.events))
	m.Handle("POST /deployments/{id}/cancel", k.post(k.cancel))
	m.Handle("POST /deployments/{id}/validate", k.post(k.validate))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		k.fail(w, r, nil, http.StatusNotFound, fmt.Sprintf("no console page at %s: start from /fleet", r.URL.Path))
	})
	k.mux = m
}

func (k *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	secure(k.mux).ServeHTTP(w, r)
}

type handler func(http.ResponseWriter, *http.Request, *session)

// get serves a page to a logged-in browser; anyone else is sent to the
// login page, which comes back here.
func (k *Console) get(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := k.sess.fromRequest(r)
		if s == nil {
			if r.Header.Get("Accept") == "text/event-stream" {
				http.Error(w, "console: not logged in: open /login", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r, s)
	})
}

// post runs an action for a logged-in browser whose form carries the
// session's CSRF token; anything else is refused with 403.
func (k *Console) post(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		s := k.sess.fromRequest(r)
		if s == nil {
			k.fail(w, r, nil, http.StatusForbidden, "not logged in: open /login and log in with the admin token, then submit again")
			return
		}
		if err := r.ParseForm(); err != nil {
			k.fail(w, r, s, http.StatusBadRequest, "cannot read the form: "+err.Error())
			return
		}
		if !sameOrigin(r) {
			k.fail(w, r, s, http.StatusForbidden, fmt.Sprintf("refused: the form was posted from another origin (%s)", r.Header.Get("Origin")))
			return
		}
		if !equalSecret(r.PostForm.Get(fieldCSRF), s.csrf) {
			k.fail(w, r, s, http.StatusForbidden, "refused: the form's CSRF token is missing or wrong; reload the page and submit it again")
			return
		}
		h(w, r, s)
	})
}

// page is what every template gets.
type page struct {
	Title  string
	Nav    string
	CSRF   string
	Flash  string
	Error  string
	Data   any
	Status int
}

func (k *Console) render(w http.ResponseWriter, r *http.Request, s *session, name string, p page) {
	if s != nil {
		p.CSRF = s.csrf
		if p.Flash == "" {
			p.Flash = k.sess.takeFlash(s)
		}
	}
	var buf bytes.Buffer
	if err := k.pages[name].ExecuteTemplate(&buf, "base", p); err != nil {
		k.opt.Logger.Error("console: render", "page", name, "err", err)
		http.Error(w, "console: render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if p.Status != 0 {
		w.WriteHeader(p.Status)
	}
	w.Write(buf.Bytes())
}

func (k *Console) fail(w http.ResponseWriter, r *http.Request, s *session, code int, msg string) {
	p := page{Title: http.StatusText(code), Error: msg, Status: code}
	if s != nil {
		p.Nav = "-" // the menu, nothing current
	}
	k.render(w, r, s, "error", p)
}

// statusOf maps a coordinator error to an HTTP status as the JSON API does.
func statusOf(err error) int {
	switch {
	case errors.Is(err, coordinator.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, coordinator.ErrBadRequest), errors.Is(err, coordinator.ErrNoTargets):
		return http.StatusBadRequest
	case errors.Is(err, coordinator.ErrConflict):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

func (k *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	k.loginPage(w, r, http.StatusOK, "")
}

// loginPage shows the form with a fresh CSRF token; next (where to go
// after logging in) comes from the query, or from the refused form.
func (k *Console) loginPage(w http.ResponseWriter, r *http.Request, code int, msg string) {
	tok := randomHex(32)
	setCookie(w, r, cookieLogin, tok, 600)
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostForm.Get("next")
	}
	k.render(w, r, nil, "login", page{Title: "Log in", Error: msg, Status: code, CSRF: tok,
		Data: map[string]string{"Next": safeNext(next)}})
}

func (k *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		k.loginPage(w, r, http.StatusBadRequest, "cannot read the form: "+err.Error())
		return
	}
	if !sameOrigin(r) {
		k.loginPage(w, r, http.StatusForbidden, fmt.Sprintf("refused: the login form was posted from another origin (%s)", r.Header.Get("Origin")))
		return
	}
	ck, err := r.Cookie(cookieLogin)
	if err != nil || !equalSecret(r.PostForm.Get(fieldCSRF), ck.Value) {
		k.loginPage(w, r, http.StatusForbidden, "refused: the login form's CSRF token is missing or wrong; submit the form again")
		return
	}
	if !k.logins.AllowN(k.opt.Now(), 1) {
		k.loginPage(w, r, http.StatusTooManyRequests, "too many login attempts: wait a few seconds and try again")
		return
	}
	if !equalSecret(r.PostForm.Get("token"), k.c.AdminToken()) {
		k.opt.Logger.Warn("console: login refused", "remote", r.RemoteAddr)
		k.loginPage(w, r, http.StatusUnauthorized, "wrong admin token: paste the content of admin.token in the coordinator's directory")
		return
	}
	s := k.sess.create()
	setCookie(w, r, cookieLogin, "", -1)
	setCookie(w, r, sessionCookieName(r), s.id, int(k.opt.SessionTTL/time.Second))
	k.opt.Logger.Info("console: login", "remote", r.RemoteAddr)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

func (k *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	k.sess.drop(s.id)
	setCookie(w, r, sessionCookieName(r), "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
