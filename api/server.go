package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// Checker reports whether a dependency (NATS, Redis) is reachable.
type Checker interface {
	Check(ctx context.Context) error
}

// CheckFunc adapts a function to Checker.
type CheckFunc func(ctx context.Context) error

// Check calls f.
func (f CheckFunc) Check(ctx context.Context) error { return f(ctx) }

// Config holds the API's optional settings.
type Config struct {
	// Logger receives request logs; nil means slog.Default().
	Logger *slog.Logger
	// Checks are run by /readyz, by name; nil means none (always ready).
	Checks map[string]Checker
}

// Server is the HTTP API.
type Server struct {
	cfg    Config
	engine *gin.Engine
	http   *http.Server
}

// New builds the API's handler.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(gin.Recovery())
	s := &Server{cfg: cfg, engine: e}
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	return s
}

// Handler is the API as an http.Handler.
func (s *Server) Handler() http.Handler { return s.engine }

// Serve answers on l until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.http = &http.Server{Handler: s.engine, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := s.http.Shutdown(sctx)
	if err != nil {
		_ = s.http.Close() // close what a graceful shutdown left open
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	out := gin.H{}
	status := http.StatusOK
	for name, chk := range s.cfg.Checks {
		if err := chk.Check(ctx); err != nil {
			out[name] = err.Error()
			status = http.StatusServiceUnavailable
			continue
		}
		out[name] = "ok"
	}
	c.JSON(status, out)
}
