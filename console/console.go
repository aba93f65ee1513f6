// Package console serves the farm's HTTP API, its web console and its
// metrics on [console] listen. Any node's console shows and controls the
// whole farm: the agent answers for the others from gossip, and forwards an
// action to the node it names.
//
// Every path but the login page and its static assets needs a console
// session (POST /login with the password from console.password_file sets a
// cookie) or the API token (Authorization: Bearer, the token in
// state_dir/api.token, which the CLI reads through its --config); without
// one it answers 401, from loopback too. State changes from a browser are
// refused when they come from another origin (403).
package console

import (
	"context"
	"crypto/tls"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/webfarm/farm/farm/events"
	"github.com/webfarm/farm/farm/view"
)

const isWindows = runtime.GOOS == "windows"

// NodeStatus is one node in `farm status --json`.
type NodeStatus struct {
	Name    string  `json:"name"`
	ID      int     `json:"id"`
	State   string  `json:"state"`
	Buckets int     `json:"buckets"`
	Share   float64 `json:"share"`
	Weight  int     `json:"weight"`
	Addr    string  `json:"addr"`
	Self    bool    `json:"self,omitempty"`
	// Suspect is set while the failure detector doubts the node.
	Suspect bool `json:"suspect,omitempty"`
	// Detail is what the node itself reports (flows, checkers, frames
	// seen); nil when it did not answer.
	Detail *NodeDetail `json:"detail,omitempty"`
}

// NodeDetail is what a node knows only of itself, gathered from each node.
type NodeDetail struct {
	// Flows is its established flows to the VIPs; -1 when unknown.
	Flows int `json:"flows"`
	// Checkers lists its checkers' last results.
	Checkers []CheckerStatus `json:"checkers,omitempty"`
	// Seen counts the new connections to each VIP it saw before its own
	// verdict (every node should see all of them).
	Seen map[string]uint64 `json:"seen,omitempty"`
	// Phase is its recovery phase (checkers' policy).
	Phase string `json:"phase,omitempty"`
	// Serving is false while the node answers no new connection, and Why
	// says why (not-joined, no-quorum, leaving).
	Serving bool   `json:"serving"`
	Why     string `json:"why,omitempty"`
	// At is when the node answered.
	At time.Time `json:"at"`
}

// CheckerStatus is one checker's last result.
type CheckerStatus struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	State     string    `json:"state"`
	LastError string    `json:"last_error,omitempty"`
	LastCheck time.Time `json:"last_check"`
}

// Warning is a problem the farm detected, for the console's banner.
type Warning struct {
	Node string `json:"node"`
	Kind string `json:"kind"`
	Text string `json:"text"`
}

// Status is the farm as this node sees it.
type Status struct {
	Nodes   []NodeStatus `json:"nodes"`
	Buckets int          `json:"buckets"`
	Self    string       `json:"self"`
	// Quorum is false when the answering node is on the minority side of a
	// partition and serves nobody.
	Quorum bool `json:"quorum"`
	// Known and Healthy count the nodes that count towards the majority and
	// those alive and not suspected.
	Known   int `json:"known"`
	Healthy int `json:"healthy"`
	// Witness is the tie-breaker address and whether it answers; nil when
	// none is configured.
	Witness *WitnessStatus `json:"witness,omitempty"`
	// Serving is whether the answering node's data path takes new
	// connections for its share now (its latest plan), Why why not.
	Serving bool   `json:"serving"`
	Why     string `json:"why,omitempty"`
	// Withheld counts the buckets the farm gives the answering node that it
	// does not answer yet: a handoff or an announced switch in progress, or
	// a dead node's buckets while its host is probed or may still answer.
	Withheld int `json:"withheld"`
	// TableVersion changes whenever the owner table does (GET /api/v1/table).
	TableVersion string    `json:"table_version"`
	Warnings     []Warning `json:"warnings,omitempty"`
	Time         time.Time `json:"time"`
}

// WitnessStatus is the witness as this node sees it.
type WitnessStatus struct {
	Address   string `json:"address"`
	Reachable bool   `json:"reachable"`
}

// Table is the owner table for the bucket map.
type Table struct {
	Buckets int    `json:"buckets"`
	Version string `json:"version"`
	// Owners is the node id of every bucket, as base64 of one byte each.
	Owners []byte `json:"owners"`
	// Names maps ids to node names.
	Names map[string]string `json:"names"`
}

// EventQuery selects events.
type EventQuery struct {
	// After returns only events with a larger sequence number.
	After uint64
	// Node and Kind filter (Kind is a prefix of What: "node", "operator",
	// "checker", ...); empty matches all.
	Node, Kind string
	Limit      int
}

// ErrNoSuchNode is returned by Farm.Act for a name the farm does not know.
var ErrNoSuchNode = errors.New("no such node")

// Farm is what the console needs from the agent.
type Farm interface {
	// Status returns the farm; detail asks every node for its own detail
	// (flows, checkers), which takes a gossip round trip.
	Status(ctx context.Context, detail bool) Status
	// Table returns the owner table.
	Table() Table
	// Act applies action (stop, start, drain) to the named node, wherever it is.
	Act(ctx context.Context, node, action string) error
	// Events returns recent events, oldest first.
	Events(q EventQuery) []events.Event
	// WhatIf computes what a change would move, changing nothing.
	WhatIf(c view.Change) (view.WhatIf, error)
}

// Options configure a Server.
type Options struct {
	// Listen is the ip:port to serve on.
	Listen string
	// PasswordFile holds the console password's bcrypt hash; empty: no
	// console login, only the API token.
	PasswordFile string
	// StateDir holds the API token file (created at first start).
	StateDir string
	// TLSCert and TLSKey serve HTTPS when set.
	TLSCert, TLSKey string
	// Metrics serves /metrics; MetricsPublic serves it without auth.
	Metrics       http.Handler
	MetricsPublic bool
}

// Server is the console and API server. New prepares it; Run serves.
type Server struct {
	opt  Options
	farm Farm
	log  *slog.Logger
	auth *auth
	tls  *tls.Config
}

// New reads the password file and the TLS pair and loads or creates the
// API token; it serves nothing yet.
func New(opt Options, farm Farm, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opt: opt, farm: farm, log: log, auth: &auth{
		now: time.Now, sessions: map[string]time.Time{}, limiters: map[string]*limiter{},
	}}
	if opt.PasswordFile != "" {
		h, err := readPasswordFile(opt.PasswordFile)
		if err != nil {
			return nil, err
		}
		s.auth.hash = h
	}
	if opt.StateDir != "" {
		tok, err := LoadOrCreateToken(opt.StateDir)
		if err != nil {
			return nil, err
		}
		s.auth.token = []byte(tok)
	}
	if opt.TLSCert != "" || opt.TLSKey != "" {
		pair, err := tls.LoadX509KeyPair(opt.TLSCert, opt.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("console.tls_cert/tls_key: %w (farm cert makes a pair)", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	return s, nil
}

//go:embed web
var webFS embed.FS

// web returns the embedded console files.
func web() fs.FS {
	sub, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// Handler returns every route with access control applied.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// Public: the login page and the static assets it uses, and nothing
	// else of the embedded tree (a served subtree, so "/static/../app" cannot
	// climb out of it).
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticFiles()))

	private := http.NewServeMux()
	private.HandleFunc("POST /logout", s.logout)
	private.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		serveFile(w, r, "index.html")
	})
	private.HandleFunc("GET /app/", func(w http.ResponseWriter, r *http.Request) {
		serveFile(w, r, strings.TrimPrefix(r.URL.Path, "/"))
	})
	private.HandleFunc("GET /api/v1/status", s.status)
	private.HandleFunc("GET /api/v1/table", s.table)
	private.HandleFunc("GET /api/v1/events", s.events)
	private.HandleFunc("GET /api/v1/stream", s.stream)
	private.HandleFunc("POST /api/v1/nodes/{name}/{action}", s.act)
	private.HandleFunc("POST /api/v1/farm/{action}", s.actAll)
	private.HandleFunc("POST /api/v1/plan", s.whatIf)
	if s.opt.Metrics != nil {
		if s.opt.MetricsPublic {
			mux.Handle("GET /metrics", s.opt.Metrics)
		} else {
			private.Handle("GET /metrics", s.opt.Metrics)
		}
	}
	mux.Handle("/", s.requireAuth(private))
	cop := http.NewCrossOriginProtection()
	return securityHeaders(cop.Handler(mux))
}

// staticFiles serves the embedded static/ directory only; a name that is no
// valid path in it (dot-dot, invalid UTF-8) is not found rather than an error.
func staticFiles() http.Handler {
	sub, err := fs.Sub(web(), "static")
	if err != nil {
		panic(err) // embedded at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Files only: no directory listings, no invalid names.
		if name := r.URL.Path; name == "" || strings.HasSuffix(name, "/") || !fs.ValidPath(name) {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// serveFile serves one embedded file by name; a name that is not a file
// there is not found.
func serveFile(w http.ResponseWriter, r *http.Request, name string) {
	if !fs.ValidPath(name) || strings.Contains(name, "..") {
		http.NotFound(w, r)
		return
	}
	if fi, err := fs.Stat(web(), name); err != nil || fi.IsDir() {
		http.NotFound(w, r)
		return
	}
	http.ServeFileFS(w, r, web(), name)
}

// securityHeaders keeps the console out of frames and other origins' scripts.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'")
		next.ServeHTTP(w, r)
	})
}

// requireAuth lets through requests with a session or the token. Others get
// 401; a browser asking for the console page is sent to the login page.
func (s *Server) requireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.auth.checkToken(r) || s.auth.checkSession(r) {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodGet && (r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/app/")) {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		writeError(w, http.StatusUnauthorized, "log in (POST /login) or send the API token (Authorization: Bearer, from state_dir/api.token)")
	})
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.auth.checkSession(r) {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	serveFile(w, r, "login.html")
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if ok, wait := s.auth.allowLogin(r); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
		s.log.Warn("Console login refused: too many attempts.", "from", sourceOf(r))
		loginFailed(w, http.StatusTooManyRequests, "Too many attempts: wait a little and try again.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	pw := r.PostFormValue("password")
	if s.auth.hash == nil {
		loginFailed(w, http.StatusUnauthorized, "This console has no password: set console.password_file (farm passwd makes one).")
		return
	}
	if !s.auth.checkPassword(pw) {
		s.log.Warn("Console login refused: wrong password.", "from", sourceOf(r))
		loginFailed(w, http.StatusUnauthorized, "Wrong password.")
		return
	}
	id, exp, err := s.auth.newSession()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: id, Path: "/", Expires: exp, MaxAge: int(SessionTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.tls != nil || r.TLS != nil,
	})
	s.log.Info("Console login.", "from", sourceOf(r))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// loginFailed answers a failed login with the login page and the reason.
func loginFailed(w http.ResponseWriter, code int, msg string) {
	b, err := fs.ReadFile(web(), "login.html")
	if err != nil {
		writeError(w, code, msg)
		return
	}
	page := strings.Replace(string(b), `<p id="error" hidden></p>`, `<p id="error">`+htmlEscape(msg)+`</p>`, 1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(page))
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	s.auth.endSession(r)
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	writeJSON(w, http.StatusOK, s.farm.Status(ctx, r.URL.Query().Get("detail") != "0"))
}

func (s *Server) table(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.farm.Table())
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q, err := eventQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": s.farm.Events(q)})
}

func eventQuery(r *http.Request) (EventQuery, error) {
	v := r.URL.Query()
	q := EventQuery{Limit: 200, Node: v.Get("node"), Kind: v.Get("kind")}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			return q, errors.New("limit must be 1..10000")
		}
		q.Limit = n
	}
	if a := v.Get("after"); a != "" {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return q, errors.New("after must be an event sequence number")
		}
		q.After = n
	}
	return q, nil
}

func validAction(a string) bool { return a == "stop" || a == "start" || a == "drain" }

func (s *Server) act(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	if !validAction(action) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown action %q (stop, start, drain)", action))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	err := s.farm.Act(ctx, name, action)
	switch {
	case errors.Is(err, ErrNoSuchNode):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusBadGateway, err.Error())
	default:
		s.log.Info("Action applied.", "subject", name, "action", action, "from", sourceOf(r))
		writeJSON(w, http.StatusOK, map[string]string{"node": name, "action": action, "result": "ok"})
	}
}

// actAll applies an action to every node that can be reached.
func (s *Server) actAll(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	if !validAction(action) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown action %q (stop, start, drain)", action))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	results := map[string]string{}
	failed := false
	for _, n := range s.farm.Status(ctx, false).Nodes {
		if n.State == string(view.StateDown) {
			results[n.Name] = "skipped: down"
			continue
		}
		if err := s.farm.Act(ctx, n.Name, action); err != nil {
			results[n.Name] = "error: " + err.Error()
			failed = true
			continue
		}
		results[n.Name] = "ok"
	}
	s.log.Info("Action applied to the farm.", "action", action, "from", sourceOf(r))
	code := http.StatusOK
	if failed {
		code = http.StatusBadGateway
	}
	writeJSON(w, code, map[string]any{"action": action, "results": results})
}

func (s *Server) whatIf(w http.ResponseWriter, r *http.Request) {
	var c view.Change
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		writeError(w, http.StatusBadRequest, "body: a JSON change such as {\"node\":\"web2\",\"action\":\"stop\"}: "+err.Error())
		return
	}
	res, err := s.farm.WhatIf(c)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// streamEvery is how often the stream sends the status.
const streamEvery = time.Second

// stream sends server-sent events: "status" every second, "table" when the
// owner table changed, and "events" with the new events, until the client
// goes or the server shuts down.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	var lastSeq uint64
	if v := r.URL.Query().Get("after"); v != "" {
		lastSeq, _ = strconv.ParseUint(v, 10, 64)
	}
	// EventSource reconnects with the last id it saw: resume from there.
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			lastSeq = n
		}
	}
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return
	}
	tableVersion := ""
	tick := time.NewTicker(streamEvery)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		st := s.farm.Status(ctx, true)
		cancel()
		if !send("status", st) {
			return
		}
		if st.TableVersion != tableVersion {
			tableVersion = st.TableVersion
			if !send("table", s.farm.Table()) {
				return
			}
		}
		if evs := s.farm.Events(EventQuery{After: lastSeq, Limit: 500}); len(evs) > 0 {
			lastSeq = evs[len(evs)-1].Seq
			if _, err := fmt.Fprintf(w, "id: %d\n", lastSeq); err != nil {
				return
			}
			if !send("events", evs) {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// Run serves until ctx ends, then shuts down (streams end with ctx).
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opt.Listen)
	if err != nil {
		return fmt.Errorf("console.listen %s: %w", s.opt.Listen, err)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	scheme := "http"
	if s.tls != nil {
		srv.TLSConfig = s.tls
		ln = tls.NewListener(ln, s.tls)
		scheme = "https"
	}
	s.log.Info("Console listening.", "url", scheme+"://"+ln.Addr().String()+"/", "login", s.auth.hash != nil)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		return fmt.Errorf("console: %w", err)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
