package api

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/internal/provision"
)

// The operator's web console, /ui: plain HTML, CSS and JavaScript embedded
// in the binary (api/ui/), no build step and nothing fetched from outside.
// The page reads and acts only through the public API — the node as GET
// /v1/nodes/{n} renders it (secrets masked there, once), the actions as
// the API's PUTs — and follows GET /v1/watch for the lock view and the
// fleet's events, so the rules of the API are the console's rules: a
// reader's page shows the actions disabled and the API refuses them anyway.

//go:embed ui
var uiFiles embed.FS

// uiAssets is api/ui as served under /ui/static.
var uiAssets = func() fs.FS {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embed pattern above names the directory
	}
	return sub
}()

// uiIndex is the console's one page (the views are fragments: #/locks,
// #/node/<uuid>). Served as bytes: http.FileServer redirects index.html.
var uiIndex = func() []byte {
	b, err := fs.ReadFile(uiAssets, "index.html")
	if err != nil {
		panic(err) // embedded above
	}
	return b
}()

// uiRoutes serves /ui, its assets and /ui/session, under the API's own
// authentication (read access): with http_basic the browser asks for the
// user once and sends the credentials with the page's every request, the
// watch stream and the console's WebSocket included.
func (s *Server) uiRoutes() {
	auth := s.authenticate(read)
	static := http.StripPrefix("/ui/static", http.FileServerFS(uiAssets))
	s.engine.GET("/ui", auth, uiHeaders, func(c *gin.Context) { c.Data(http.StatusOK, "text/html; charset=utf-8", uiIndex) })
	s.engine.GET("/ui/static/*file", auth, uiHeaders, gin.WrapH(static))
	s.engine.GET("/ui/session", auth, s.uiSession)
}

// uiHeaders keeps the console's pages to their own origin: no scripts or
// connections elsewhere, no framing by another site.
func uiHeaders(c *gin.Context) {
	h := c.Writer.Header()
	// The console's WebSocket is same-origin; browsers differ on whether
	// 'self' covers ws:, so the host is named too.
	host := strings.Map(func(r rune) rune {
		if r <= ' ' || r == ';' || r == ',' || r == '\'' || r == 0x7f {
			return -1
		}
		return r
	}, c.Request.Host)
	h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws://"+host+" wss://"+host+"; img-src 'self' data:; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// crossOrigin refuses writes that a browser sends from another site (Go's
// CrossOriginProtection: Sec-Fetch-Site, or Origin against Host). The web
// console makes browsers hold an operator's http_basic credentials for the
// API's origin, and a page elsewhere could otherwise send a simple
// cross-site POST (text/plain, no preflight) with them. Requests without
// those headers — every non-browser client — pass; ironfleet answers no
// CORS, so no other site's page is meant to write anyway.
func (s *Server) crossOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.InfoContext(r.Context(), "cross-origin write refused", "method", r.Method, "path", r.URL.Path,
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(errorBody(http.StatusForbidden, "A cross-origin browser request may not change anything."))
	}))
	return cop.Handler(next)
}

// uiStuckAfter is how long a node may sit in a transient or wait state
// before the fleet page lists it as stuck. Wait states time out by
// themselves and transient ones are recovered when their conductor dies,
// so a node still there after this long is worth an operator's look.
const uiStuckAfter = 10 * time.Minute

// uiSession tells the page who is signed in and whether it may act, so that
// a reader's page shows the actions disabled (the API refuses them anyway),
// and which provision states are in progress or failed (internal/provision,
// the one place that knows).
func (s *Server) uiSession(c *gin.Context) {
	user := c.GetString(ctxUser)
	role := s.roleOf(user)
	c.JSON(http.StatusOK, gin.H{
		"user":    user,
		"role":    role,
		"auth":    s.cfg.Auth,
		"can_act": role == RoleAdmin,
		"states": gin.H{
			"transient": provision.InKind(provision.Transient),
			"wait":      provision.InKind(provision.Wait),
			"failed":    provision.InKind(provision.Failed),
			"hold":      provision.InKind(provision.Hold),
		},
		"stuck_after_s": int(uiStuckAfter.Seconds()),
	})
}
