package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"
)

// Access control. Nothing but the login page and its static assets answers
// without a console session (a cookie from POST /login, for people) or the
// API token (Authorization: Bearer, for the CLI and scripts) — loopback
// included: any local user, or any web page open in a browser on the node,
// could otherwise stop the farm.

// SessionCookie is the name of the console's session cookie.
const SessionCookie = "farm_session"

// SessionTTL is how long a login lasts.
const SessionTTL = 12 * time.Hour

// maxSessions bounds the session table: a login beyond it evicts the oldest.
const maxSessions = 1000

// Login rate limit per source address: a burst of loginBurst attempts, then
// one every loginEvery. Checked before bcrypt, which is slow on purpose.
const (
	loginBurst   = 5
	loginEvery   = 2 * time.Second
	maxLimiters  = 10000
	limiterIdle  = 10 * time.Minute
	tokenBytes   = 32
	tokenFileTag = "api.token"
)

// TokenFile is the name of the API token file in the state directory.
const TokenFile = tokenFileTag

// auth holds the password hash, the API token and the live sessions.
type auth struct {
	hash  []byte // bcrypt; nil: no password, so no console login
	token []byte
	now   func() time.Time

	mu       sync.Mutex
	sessions map[string]time.Time // session id -> expiry
	limiters map[string]*limiter  // source address -> login limiter
}

type limiter struct {
	*rate.Limiter
	last time.Time
}

// readPasswordFile reads a bcrypt hash written by `farm passwd`.
func readPasswordFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("console.password_file: %w", err)
	}
	h := []byte(strings.TrimSpace(string(b)))
	if _, err := bcrypt.Cost(h); err != nil {
		return nil, fmt.Errorf("console.password_file %s: not a bcrypt hash (farm passwd makes one): %w", path, err)
	}
	return h, nil
}

// LoadOrCreateToken returns the API token kept in dir/api.token, creating
// the file (mode 0600, a random token) if it does not exist yet. A file
// readable by others is refused: whoever reads it can stop the farm.
func LoadOrCreateToken(dir string) (string, error) {
	path := filepath.Join(dir, TokenFile)
	if b, err := os.ReadFile(path); err == nil {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 && !isWindows {
			return "", fmt.Errorf("API token %s is readable by others (mode %04o): chmod 600 %s", path, fi.Mode().Perm(), path)
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < 16 {
			return "", fmt.Errorf("API token %s is too short or empty: delete it and restart the agent to make a new one", path)
		}
		return tok, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read API token: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("state_dir %s: %w", dir, err)
	}
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	tok := base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create API token %s: %w", path, err)
	}
	_, err = f.WriteString(tok + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("write API token %s: %w", path, err)
	}
	return tok, nil
}

// checkToken reports whether r carries the API token.
func (a *auth) checkToken(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	return ok && len(a.token) > 0 && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), a.token) == 1
}

// checkSession reports whether r carries a live session cookie.
func (a *auth) checkSession(r *http.Request) bool {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.sessions[c.Value]
	if !ok {
		return false
	}
	if !a.now().Before(exp) {
		delete(a.sessions, c.Value)
		return false
	}
	return true
}

// newSession makes a session and returns its id.
func (a *auth) newSession() (string, time.Time, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", time.Time{}, err
	}
	id := base64.RawURLEncoding.EncodeToString(raw)
	exp := a.now().Add(SessionTTL)
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for k, e := range a.sessions {
		if !now.Before(e) {
			delete(a.sessions, k)
		}
	}
	if len(a.sessions) >= maxSessions {
		var oldest string
		var oldestExp time.Time
		for k, e := range a.sessions {
			if oldest == "" || e.Before(oldestExp) {
				oldest, oldestExp = k, e
			}
		}
		delete(a.sessions, oldest)
	}
	a.sessions[id] = exp
	return id, exp, nil
}

// endSession forgets the session of r, if any.
func (a *auth) endSession(r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
}

// allowLogin applies the per-source login rate limit; it returns how long
// to wait when the attempt is refused.
func (a *auth) allowLogin(r *http.Request) (bool, time.Duration) {
	src := sourceOf(r)
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.limiters) >= maxLimiters {
		for k, l := range a.limiters {
			if now.Sub(l.last) > limiterIdle {
				delete(a.limiters, k)
			}
		}
		if len(a.limiters) >= maxLimiters {
			// Under a flood of sources, every new source shares one limiter.
			src = "overflow"
		}
	}
	l, ok := a.limiters[src]
	if !ok {
		l = &limiter{Limiter: rate.NewLimiter(rate.Every(loginEvery), loginBurst)}
		a.limiters[src] = l
	}
	l.last = now
	res := l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// checkPassword compares a login attempt with the hash.
func (a *auth) checkPassword(pw string) bool {
	return a.hash != nil && pw != "" && bcrypt.CompareHashAndPassword(a.hash, []byte(pw)) == nil
}

// sourceOf is the client address a request came from (the host part).
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
