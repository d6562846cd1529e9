package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Cookie names. With TLS the session cookie takes the __Host- prefix, so
// a browser only accepts it Secure, host-only and for path /.
const (
	cookieSession    = "relaymesh_session"
	cookieSessionTLS = "__Host-relaymesh_session"
	cookieLogin      = "relaymesh_login" // the login form's CSRF token, before a session exists
	fieldCSRF        = "csrf"
	maxSessions      = 1024
	maxFormBytes     = 64 << 10
)

// csp lets the page load its own script, style and images only: no inline
// script or style, no framing, forms post only here.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

type session struct {
	id      string
	csrf    string
	expires time.Time
	flash   string
}

// sessions live in memory: a restarted coordinator asks for the token
// again.
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	ttl time.Duration
	now func() time.Time
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *sessions) create() *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var oldest *session
	for id, x := range s.m {
		if !now.Before(x.expires) {
			delete(s.m, id)
			continue
		}
		if oldest == nil || x.expires.Before(oldest.expires) {
			oldest = x
		}
	}
	if len(s.m) >= maxSessions && oldest != nil {
		delete(s.m, oldest.id)
	}
	x := &session{id: randomHex(32), csrf: randomHex(32), expires: now.Add(s.ttl)}
	s.m[x.id] = x
	return x
}

func (s *sessions) get(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.m[id]
	if x == nil {
		return nil
	}
	if !s.now().Before(x.expires) {
		delete(s.m, id)
		return nil
	}
	return x
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// setFlash and takeFlash carry one message across a POST's redirect.
func (s *sessions) setFlash(x *session, msg string) {
	s.mu.Lock()
	x.flash = msg
	s.mu.Unlock()
}

func (s *sessions) takeFlash(x *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := x.flash
	x.flash = ""
	return m
}

func sessionCookieName(r *http.Request) string {
	if r.TLS != nil {
		return cookieSessionTLS
	}
	return cookieSession
}

func (s *sessions) fromRequest(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookieName(r))
	if err != nil || ck.Value == "" {
		return nil
	}
	return s.get(ck.Value)
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

func equalSecret(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// secure sets the headers every response carries.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// same-origin, not no-referrer: with no-referrer a browser sends
		// "Origin: null" on form posts, and sameOrigin needs the origin.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// sameOrigin refuses a POST whose Origin header names another site (a
// browser sends it on every cross-site POST).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// safeNext keeps a post-login redirect on this console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.HasPrefix(next, "/login") {
		return "/fleet"
	}
	return next
}
