package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// errTokenIssued: a lookup for a node whose agent token was already handed
// out (the agent retries; the conductor clears it when it boots the node
// into the agent again).
var errTokenIssued = errors.New("api: agent token already issued")

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail
	return hex.EncodeToString(b[:])
}

// lookup finds the node of an agent by its MACs (or node_uuid) and hands
// out the node's one-time agent token. Nodes that do not expect an agent
// are "not found", as Ironic answers (restrict_lookup).
func (s *Server) lookup(c *gin.Context) {
	ctx := c.Request.Context()
	addrs, hint := c.Query("addresses"), c.Query("node_uuid")
	if addrs == "" && hint == "" {
		s.fail(c, badRequest("Lookup needs addresses (MACs, comma-separated) or node_uuid."))
		return
	}
	var (
		node  wire.Node
		found bool
	)
	if hint != "" {
		if !isUUID(hint) {
			s.fail(c, badRequest("node_uuid %q is not a UUID.", hint))
			return
		}
		n, err := s.deps.Nodes.Get(ctx, strings.ToLower(hint))
		if err != nil && wire.CodeOf(err) != wire.CodeNotFound {
			s.fail(c, err)
			return
		}
		node, found = n, err == nil
	}
	if !found {
		n, ok, err := s.nodeByMACs(ctx, addrs)
		if err != nil {
			s.fail(c, err)
			return
		}
		node, found = n, ok
	}
	notFound := wire.Errorf(wire.CodeNotFound, "Node with addresses %s could not be found.", addrs)
	if !found || !provision.ExpectsAgent(node.ProvisionState) {
		s.fail(c, notFound)
		return
	}
	updated, token, err := s.issueToken(ctx, node, notFound)
	switch {
	case errors.Is(err, errTokenIssued):
		err = wire.Errorf(wire.CodeConflict, "An agent token was already issued for node %s; the agent must wait until the node is booted into it again.", node.UUID)
	case wire.CodeOf(err) == wire.CodeNotFound:
		err = notFound
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.InfoContext(ctx, "agent token issued", "request_id", c.GetString(ctxRequestID), "node", updated.UUID,
		"client", c.ClientIP())
	c.JSON(http.StatusOK, wire.LookupResponse{
		Node: wire.LookupNode{
			UUID:         updated.UUID,
			Properties:   updated.Properties,
			InstanceInfo: masked(updated.InstanceInfo), // as Ironic's lookup: the agent needs no secret of it
			DriverInternalInfo: map[string]any{
				"agent_url": agentURL(updated),
			},
		},
		Config: wire.LookupConfig{
			HeartbeatTimeout:   s.cfg.HeartbeatTimeout.Seconds(),
			AgentToken:         token,
			AgentTokenRequired: true,
		},
	})
}

// issueToken stores the hash of a new agent token on node and returns the
// node and the token. It writes under the node's lock, as Ironic's
// get_node_with_token does: while a conductor holds it (booting the node
// into this very agent) the answer is 409 NodeLocked, and the agent pauses
// and looks up again. A token already issued is errTokenIssued, without
// waiting for the lock to say so; a node that stopped expecting an agent is
// notFound.
func (s *Server) issueToken(ctx context.Context, node wire.Node, notFound error) (wire.Node, string, error) {
	issued := func(n wire.Node) bool { return n.Agent != nil && n.Agent.TokenHash != "" }
	if issued(node) {
		return wire.Node{}, "", errTokenIssued
	}
	token := newToken()
	var updated wire.Node
	// In line, not standard mode: a console or heartbeats taking the lock
	// again and again must not starve the agent's lookup.
	err := s.underLockWith(ctx, s.lockNodeInLine, node.UUID, "agent lookup", func(ctx context.Context, fence uint64) error {
		var err error
		updated, err = s.deps.Nodes.UpdateNode(ctx, node.UUID, fence, func(n *wire.Node) error {
			if !provision.ExpectsAgent(n.ProvisionState) {
				return notFound
			}
			if issued(*n) {
				return errTokenIssued
			}
			if n.Agent == nil {
				n.Agent = &wire.AgentInfo{}
			}
			n.Agent.TokenHash, n.Agent.Token = tokenHash(token), token
			return nil
		})
		return err
	})
	return updated, token, err
}

// nodeByMACs finds the node owning the first known MAC of a comma-separated
// list.
func (s *Server) nodeByMACs(ctx context.Context, addrs string) (wire.Node, bool, error) {
	for a := range strings.SplitSeq(addrs, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		mac, err := transport.NormalizeMAC(a)
		if err != nil {
			return wire.Node{}, false, badMAC(a)
		}
		n, err := s.deps.Nodes.NodeByMAC(ctx, mac)
		if wire.CodeOf(err) == wire.CodeNotFound {
			continue
		}
		if err != nil {
			return wire.Node{}, false, err
		}
		return n, true, nil
	}
	return wire.Node{}, false, nil
}

func agentURL(n wire.Node) any {
	if n.Agent == nil || n.Agent.URL == "" {
		return nil
	}
	return n.Agent.URL
}

// heartbeat checks the agent token and publishes a heartbeat task without
// taking the lock (the conductor tries it once; the agent beats again).
func (s *Server) heartbeat(c *gin.Context) {
	ctx := c.Request.Context()
	body, err := decodeObject(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var hb wire.HeartbeatRequest
	raw, _ := json.Marshal(body) // decoded JSON re-encodes
	if err := json.Unmarshal(raw, &hb); err != nil {
		s.fail(c, badRequest("Invalid heartbeat: %v", err))
		return
	}
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if hb.AgentToken == "" {
		s.log.WarnContext(ctx, "heartbeat without an agent token", "request_id", c.GetString(ctxRequestID), "node", n.UUID, "client", c.ClientIP())
		s.fail(c, fmt.Errorf("%w: the heartbeat carries no agent_token", ErrUnauthorized))
		return
	}
	got := tokenHash(hb.AgentToken)
	matches := func(n wire.Node) bool {
		return n.Agent != nil && n.Agent.TokenHash != "" && subtle.ConstantTimeCompare([]byte(got), []byte(n.Agent.TokenHash)) == 1
	}
	if !matches(n) {
		// The cache may not have the lookup that issued the token yet.
		fresh, err := s.deps.Nodes.Get(ctx, n.UUID)
		if wire.CodeOf(err) == wire.CodeNotFound {
			err = nodeNotFound(n.UUID)
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		n = fresh
	}
	if !matches(n) {
		s.log.WarnContext(ctx, "heartbeat with a wrong agent token", "request_id", c.GetString(ctxRequestID), "node", n.UUID, "client", c.ClientIP())
		s.fail(c, fmt.Errorf("%w: invalid agent token for node %s", ErrForbidden, n.UUID))
		return
	}
	if u, err := url.Parse(hb.CallbackURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		s.fail(c, badRequest("Invalid callback_url %q: want http(s)://host:port.", hb.CallbackURL))
		return
	}
	params, _ := json.Marshal(wire.HeartbeatParams{CallbackURL: hb.CallbackURL, AgentVersion: hb.AgentVersion, TokenHash: got}) // plain struct
	// A heartbeat needs no lock: its conductor tries the lock itself.
	task := wire.NewTask(wire.OpHeartbeat, n, "agent", params)
	if _, err := s.deps.Tasks.Publish(ctx, task); err != nil {
		s.fail(c, unavailable("task bus (NATS)", err))
		return
	}
	s.metrics.tasks.WithLabelValues(string(task.Op)).Inc()
	c.Status(http.StatusAccepted)
}
