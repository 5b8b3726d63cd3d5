package api

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/bcrypt"
)

// readHTPasswd reads an htpasswd file of bcrypt entries (htpasswd -B), as
// Ironic's http_basic mode does. Other hash kinds are refused: they are
// weak, and refusing them at start beats a user who can never log in.
func readHTPasswd(path string) (map[string][]byte, error) {
	data, err := os.ReadFile(path) //nolint:gosec // an operator-given path
	if err != nil {
		return nil, fmt.Errorf("api: htpasswd: %w", err)
	}
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("api: htpasswd %s line %d: want user:hash", path, n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("api: htpasswd %s line %d (user %s): only bcrypt entries are accepted (htpasswd -B): %w", path, n, user, err)
		}
		users[user] = []byte(hash)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("api: htpasswd %s has no users", path)
	}
	return users, nil
}

// authenticate checks the caller (http_basic) and its role against the
// route's access; noauth lets everyone in as admin.
func (s *Server) authenticate(need access) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.cfg.Auth == AuthNone {
			c.Set(ctxUser, "noauth")
			c.Next()
			return
		}
		user, pass, ok := c.Request.BasicAuth()
		if !ok || !s.basic.check(user, pass) {
			c.Header("WWW-Authenticate", `Basic realm="ironfleet"`)
			s.log.InfoContext(c.Request.Context(), "authentication failed", "request_id", c.GetString(ctxRequestID), "user", user)
			s.fail(c, fmt.Errorf("%w: missing or wrong username or password", ErrUnauthorized))
			return
		}
		role := s.roleOf(user)
		if need == write && role != RoleAdmin {
			s.fail(c, fmt.Errorf("%w: user %s has role %s, which may only read", ErrForbidden, user, role))
			return
		}
		c.Set(ctxUser, user)
		c.Next()
	}
}

// roleOf is an authenticated user's role: noauth's everyone is admin.
func (s *Server) roleOf(user string) Role {
	if s.cfg.Auth == AuthNone {
		return RoleAdmin
	}
	if role, ok := s.cfg.Roles[user]; ok {
		return role
	}
	return s.cfg.DefaultRole
}

// requestedBy names the caller in tasks.
func requestedBy(c *gin.Context) string {
	if u := c.GetString(ctxUser); u != "" {
		return u
	}
	return "anonymous"
}

// basicAuth checks http_basic credentials against the htpasswd users.
//
// It remembers, per user, the SHA-256 of the password bcrypt last accepted,
// so that a client's every request does not cost a bcrypt comparison (tens
// of milliseconds by design). The htpasswd file is read once, at New, so an
// accepted password stays valid for the process.
//
// An unknown user's password is compared with a dummy hash of the users'
// highest cost, so that an unknown user costs what a wrong password does:
// the answer's timing does not tell which user names exist.
type basicAuth struct {
	users map[string][]byte // user → bcrypt hash
	dummy []byte
	// compare is bcrypt.CompareHashAndPassword; tests count its calls.
	compare func(hash, password []byte) error

	mu sync.Mutex
	ok map[string][32]byte
}

// newBasicAuth checks users' passwords against their bcrypt hashes.
func newBasicAuth(users map[string][]byte) (*basicAuth, error) {
	cost := bcrypt.MinCost
	for _, h := range users {
		if c, err := bcrypt.Cost(h); err == nil && c > cost {
			cost = c
		}
	}
	var pw [16]byte
	_, _ = rand.Read(pw[:]) // crypto/rand does not fail
	dummy, err := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(pw[:])), cost)
	if err != nil {
		return nil, fmt.Errorf("api: http_basic dummy hash: %w", err)
	}
	return &basicAuth{users: users, dummy: dummy, compare: bcrypt.CompareHashAndPassword, ok: map[string][32]byte{}}, nil
}

func (b *basicAuth) check(user, pass string) bool {
	hash, known := b.users[user]
	if !known {
		_ = b.compare(b.dummy, []byte(pass))
		return false
	}
	sum := sha256.Sum256([]byte(pass))
	b.mu.Lock()
	prev, seen := b.ok[user]
	b.mu.Unlock()
	if seen && subtle.ConstantTimeCompare(prev[:], sum[:]) == 1 {
		return true
	}
	if b.compare(hash, []byte(pass)) != nil {
		return false
	}
	b.mu.Lock()
	b.ok[user] = sum
	b.mu.Unlock()
	return true
}
