package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// CookieName is the session cookie's name.
const CookieName = "arubug_ui"

// CSRFField is the form field that carries the session's CSRF token.
const CSRFField = "csrf"

// session is one signed-in browser.
type session struct {
	csrf    string
	expires time.Time
}

// sessions holds the sessions in memory, keyed by the SHA-256 of their id
// (so that a map lookup's timing says nothing about a valid id), bounded
// in number.
type sessions struct {
	mu  sync.Mutex
	m   map[[32]byte]*session
	ttl time.Duration
	max int
	now func() time.Time
}

func newSessions(ttl time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{m: map[[32]byte]*session{}, ttl: ttl, max: max, now: now}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session and returns its id. Expired sessions are swept;
// when the map is full, the one closest to expiry makes room.
func (s *sessions) create() (string, *session) {
	id := randomToken()
	sess := &session{csrf: randomToken(), expires: s.now().Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, v := range s.m {
		if !now.Before(v.expires) {
			delete(s.m, k)
		}
	}
	for len(s.m) >= s.max {
		var oldest [32]byte
		var at time.Time
		for k, v := range s.m {
			if at.IsZero() || v.expires.Before(at) {
				oldest, at = k, v.expires
			}
		}
		delete(s.m, oldest)
	}
	s.m[sha256.Sum256([]byte(id))] = sess
	return id, sess
}

// get returns the live session with this id.
func (s *sessions) get(id string) (*session, bool) {
	if id == "" {
		return nil, false
	}
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[key]
	if !ok {
		return nil, false
	}
	if !s.now().Before(sess.expires) {
		delete(s.m, key)
		return nil, false
	}
	return sess, true
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(id)))
}

func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

type sessionKey struct{}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// tokenOK compares a submitted admin token with the configured one in
// constant time (hashing first, so not even the length leaks).
func (h *Handler) tokenOK(got string) bool {
	if h.cfg.AdminToken == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(h.cfg.AdminToken))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// requireSession lets signed-in requests through. Others are sent to the
// sign-in page (GET) or refused (anything else; nothing is done).
func (h *Handler) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var sess *session
		if c, err := r.Cookie(CookieName); err == nil {
			sess, _ = h.sessions.get(c.Value)
		}
		if sess == nil {
			switch {
			case strings.HasPrefix(r.URL.Path, Prefix+"/data/"):
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"type":"authentication_error","code":"signed_out","detail":"sign in again"}`))
			case r.Method == http.MethodGet || r.Method == http.MethodHead:
				http.Redirect(w, r, Prefix+"/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			default:
				h.errorPage(w, r, http.StatusForbidden, "Signed out", "Your session has ended, so nothing was changed. Sign in again and retry.")
			}
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	})
}

// sameOrigin refuses a state-changing request that a browser says comes
// from another site, or that carries neither Origin nor Referer (browsers
// send at least one on every POST). r.Host must be the host the browser
// used: a reverse proxy in front must pass it through.
func (h *Handler) sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sameOriginRequest(r) {
			h.cfg.Logger.Warn("ui: cross-origin request refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"), "referer_set", r.Header.Get("Referer") != "")
			h.errorPage(w, r, http.StatusForbidden, "Request refused", "This request did not come from Arubug's own pages, so nothing was changed.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func sameOriginRequest(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" || src == "null" {
		return false
	}
	u, err := url.Parse(src)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// maxFormBytes bounds a form body: a reply of api.MaxMessageBytes, escaped.
const maxFormBytes = 3*64<<10 + 16<<10

// checkCSRF requires the session's synchronizer token in the form,
// compared in constant time.
func (h *Handler) checkCSRF(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			h.errorPage(w, r, http.StatusRequestEntityTooLarge, "Too long", "The form was too long or malformed; nothing was changed.")
			return
		}
		sess := sessionFrom(r.Context())
		got := r.PostForm.Get(CSRFField)
		if sess == nil || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) != 1 {
			h.cfg.Logger.Warn("ui: request without a valid CSRF token refused", "path", r.URL.Path)
			h.errorPage(w, r, http.StatusForbidden, "Request refused", "The form's security token was missing or wrong (it may come from an old page), so nothing was changed. Reload the page and retry.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *Handler) signinPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "signin", map[string]any{"Next": safeNext(r.URL.Query().Get("next")), "Disabled": h.cfg.AdminToken == ""})
}

func (h *Handler) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	_ = r.ParseForm()
	next := safeNext(r.PostForm.Get("next"))
	if !h.tokenOK(r.PostForm.Get("token")) {
		h.cfg.Logger.Warn("ui: sign-in with a wrong admin token", "remote", r.RemoteAddr)
		h.render(w, r, http.StatusUnauthorized, "signin", map[string]any{"Next": next, "Error": "That is not the admin token.", "Disabled": h.cfg.AdminToken == ""})
		return
	}
	id, _ := h.sessions.create()
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: Prefix,
		MaxAge: int(h.cfg.SessionTTL.Seconds()), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) signout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		h.sessions.delete(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, Prefix+"/signin", http.StatusSeeOther)
}

// safeNext keeps a post-sign-in redirect inside the UI.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix+"/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix + "/"
	}
	return next
}
