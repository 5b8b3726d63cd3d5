package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Allocations (1.52), as Ironic's AllocationsController
// (ironic/api/controllers/v1/allocation.py) and its conductor
// (ironic/conductor/allocations.py): a request for an available node of a
// resource class with traits, among candidates; the node reserved gets the
// allocation's UUID as allocation_uuid and instance_uuid and its traits in
// instance_info. Backfilling (1.58) records an allocation for a node
// already deployed. Updating name and extra needs 1.57, owner 1.60.
//
// Where the matching runs: here, in the API process, before the create
// answers, each candidate taken under its node's lock (one try each, the
// whole set retried LockAttempts times, as Ironic's _allocate_node does)
// and re-checked under it. Ironic runs it on a conductor thread because
// its API cannot lock nodes; ironfleet's API takes node locks for every
// node write already, and the matching is a few reads and two
// compare-and-set writes, with no hardware to touch, so a task and a
// conductor round trip would only add latency and a state that clients
// must poll. The create answers with the allocation active, or in error
// with last_error; clients that poll (allocating → active) see the end at
// once.

const (
	allocationVersion = 52
	allocationUpdate  = 57
	allocationFill    = 58
	allocationOwner   = 60
)

func allocationNotFound(ident string) error {
	return wire.Errorf(wire.CodeNotFound, "Allocation %s could not be found.", ident)
}

// errUnsuitable marks a candidate that no longer suits the allocation
// once under its lock.
var errUnsuitable = errors.New("api: node no longer suits the allocation")

// renderAllocation renders a at v (owner from 1.60).
func renderAllocation(a wire.Allocation, base string, v Version) map[string]any {
	out := map[string]any{
		"uuid": a.UUID, "name": nullable(a.Name), "node_uuid": nullable(a.NodeUUID), "state": a.State,
		"last_error": nullable(a.LastError), "resource_class": a.ResourceClass,
		"traits": orEmptyList(a.Traits), "candidate_nodes": orEmptyList(a.CandidateNodes),
		"extra": orEmpty(a.Extra), "created_at": ironicTime(a.CreatedAt), "updated_at": ironicTime(a.UpdatedAt),
		"links": links(base, "allocations/"+a.UUID),
	}
	if v.AtLeast(allocationOwner) {
		out["owner"] = nullable(a.Owner)
	}
	return out
}

func orEmptyList(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// findAllocation resolves an allocation by UUID or name.
func (s *Server) findAllocation(ctx context.Context, ident string) (wire.Allocation, error) {
	id := strings.ToLower(ident)
	if !isUUID(ident) {
		owner, err := s.deps.Records.Allocations.Owner(ctx, "name", ident)
		if wire.CodeOf(err) == wire.CodeNotFound {
			return wire.Allocation{}, allocationNotFound(ident)
		}
		if err != nil {
			return wire.Allocation{}, err
		}
		id = owner
	}
	a, err := s.deps.Records.Allocations.Get(ctx, id)
	if wire.CodeOf(err) == wire.CodeNotFound {
		return wire.Allocation{}, allocationNotFound(ident)
	}
	return a, err
}

// allocationOf is the allocation of node n, or Ironic's 404.
func (s *Server) allocationOf(ctx context.Context, n wire.Node) (wire.Allocation, error) {
	all, err := s.deps.Records.Allocations.List(ctx, func(a wire.Allocation) bool { return a.NodeUUID == n.UUID })
	if err != nil {
		return wire.Allocation{}, err
	}
	if len(all) == 0 {
		return wire.Allocation{}, wire.Errorf(wire.CodeNotFound, "Allocation for node %s was not found", n.UUID)
	}
	return all[0], nil
}

func (s *Server) listAllocations(c *gin.Context) {
	v := version(c)
	fields := c.Query("fields")
	if _, ok := c.GetQuery("owner"); ok && !v.AtLeast(allocationOwner) {
		s.fail(c, notAcceptable())
		return
	}
	if strings.Contains(fields, "owner") && !v.AtLeast(allocationOwner) {
		s.fail(c, notAcceptable())
		return
	}
	q, err := readListQuery(c, []string{"created_at", "updated_at", "uuid", "name", "state", "resource_class", "node_uuid", "owner"})
	if err != nil {
		s.fail(c, err)
		return
	}
	var node string
	if ident := c.Query("node"); ident != "" {
		n, err := s.findNode(c, ident)
		if err != nil {
			s.fail(c, asBadRequest(err)) // Ironic: an unknown node in a filter is 400
			return
		}
		node = n.UUID
	}
	rc, state, owner := c.Query("resource_class"), c.Query("state"), c.Query("owner")
	all, err := s.deps.Records.Allocations.List(c.Request.Context(), func(a wire.Allocation) bool {
		return (node == "" || a.NodeUUID == node) && (rc == "" || a.ResourceClass == rc) &&
			(state == "" || a.State == state) && (owner == "" || a.Owner == owner)
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	base := s.base(c)
	docs := make([]map[string]any, 0, len(all))
	for _, a := range all {
		docs = append(docs, renderAllocation(a, base, v))
	}
	page, err := q.page(docs, allocationNotFound)
	if err != nil {
		s.fail(c, err)
		return
	}
	out, err := pickAll(page, fields, v)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeList(c, "allocations", out, page, q.limit)
}

// asBadRequest turns a not-found into a 400 with the same message, as
// Ironic does for a node named in a body or filter.
func asBadRequest(err error) error {
	if wire.CodeOf(err) == wire.CodeNotFound {
		return badRequest("%s", err.Error())
	}
	return err
}

// answerAllocation answers one allocation, with fields when asked.
func (s *Server) answerAllocation(c *gin.Context, a wire.Allocation) {
	v := version(c)
	doc := renderAllocation(a, s.base(c), v)
	if f := c.Query("fields"); f != "" {
		if strings.Contains(f, "owner") && !v.AtLeast(allocationOwner) {
			s.fail(c, notAcceptable())
			return
		}
		var err error
		if doc, err = pickFields(doc, f, v, nil); err != nil {
			s.fail(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, doc)
}

func (s *Server) getAllocation(c *gin.Context) {
	a, err := s.findAllocation(c.Request.Context(), c.Param("allocation"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.answerAllocation(c, a)
}

func (s *Server) getNodeAllocation(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	a, err := s.allocationOf(c.Request.Context(), n)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.answerAllocation(c, a)
}

// allocationDoc is the body of an allocation create.
type allocationDoc struct {
	UUID           *string        `json:"uuid"`
	Name           *string        `json:"name"`
	ResourceClass  *string        `json:"resource_class"`
	Traits         []string       `json:"traits"`
	CandidateNodes []string       `json:"candidate_nodes"`
	Extra          map[string]any `json:"extra"`
	Node           *string        `json:"node"`
	Owner          *string        `json:"owner"`
}

// checkAllocationName refuses a name that is not a logical name.
func checkAllocationName(name string) error {
	if name != "" && (!nameRe.MatchString(name) || isUUID(name)) {
		return badRequest("Cannot create allocation with invalid name '%s'", name)
	}
	return nil
}

func (s *Server) createAllocation(c *gin.Context) {
	v := version(c)
	body, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var d allocationDoc
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		s.fail(c, badRequest("Invalid allocation: %v", err))
		return
	}
	switch {
	case d.Owner != nil && !v.AtLeast(allocationOwner):
		s.fail(c, notAcceptable())
		return
	case d.Node != nil && !v.AtLeast(allocationFill):
		s.fail(c, badRequest("Cannot set node when creating an allocation in this API version"))
		return
	}
	a := wire.Allocation{Name: deref(d.Name), ResourceClass: deref(d.ResourceClass), Traits: d.Traits,
		Extra: d.Extra, Owner: deref(d.Owner), State: wire.AllocationAllocating}
	if err := checkAllocationName(a.Name); err != nil {
		s.fail(c, err)
		return
	}
	if len(a.ResourceClass) > 80 {
		s.fail(c, badRequest("Invalid resource_class %q: at most 80 characters.", a.ResourceClass))
		return
	}
	for _, t := range a.Traits {
		if err := checkTrait("trait", t); err != nil {
			s.fail(c, err)
			return
		}
	}
	var node *wire.Node
	if ident := deref(d.Node); ident != "" {
		n, err := s.findNode(c, ident)
		if err != nil {
			s.fail(c, asBadRequest(err))
			return
		}
		node = &n
		if a.ResourceClass == "" {
			a.ResourceClass = n.ResourceClass
		}
	}
	if a.ResourceClass == "" && node == nil {
		s.fail(c, badRequest("The resource_class field is mandatory when not backfilling"))
		return
	}
	for _, ident := range d.CandidateNodes {
		n, err := s.findNode(c, ident)
		if err != nil {
			s.fail(c, asBadRequest(err))
			return
		}
		a.CandidateNodes = append(a.CandidateNodes, n.UUID)
	}
	switch id := deref(d.UUID); {
	case id != "" && !isUUID(id):
		s.fail(c, badRequest("Expected a UUID for uuid but received %s.", id))
		return
	case id != "":
		a.UUID = strings.ToLower(id)
	case node != nil && node.InstanceUUID != "":
		a.UUID = node.InstanceUUID // backfilling: the instance's UUID, as Ironic assumes
	default:
		a.UUID = wire.NewUUID()
	}
	a.CreatedAt = time.Now().UTC()
	ctx := c.Request.Context()
	if err := s.storeAllocation(ctx, a); err != nil {
		s.fail(c, err)
		return
	}
	if node != nil {
		a, err = s.backfill(ctx, a, *node)
	} else {
		a, err = s.allocate(ctx, a)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	s.syncCache(ctx)
	c.Header("Location", s.base(c)+"/v1/allocations/"+a.UUID)
	c.JSON(http.StatusCreated, renderAllocation(a, s.base(c), v))
}

// storeAllocation claims a's name and creates it.
func (s *Server) storeAllocation(ctx context.Context, a wire.Allocation) error {
	coll := s.deps.Records.Allocations
	if a.Name != "" {
		if err := coll.Claim(ctx, "name", a.Name, a.UUID); err != nil {
			if errors.Is(err, transport.ErrExists) {
				return wire.Errorf(wire.CodeConflict, "An allocation with name %s already exists.", a.Name)
			}
			return err
		}
	}
	if err := coll.Create(ctx, a.UUID, a); err != nil {
		if a.Name != "" {
			coll.Release(context.WithoutCancel(ctx), "name", a.Name, a.UUID)
		}
		if errors.Is(err, transport.ErrExists) {
			return wire.Errorf(wire.CodeConflict, "An allocation with UUID %s already exists.", a.UUID)
		}
		return err
	}
	return nil
}

// settle writes the allocation's outcome: active on node, or error with
// why (Ironic's last_error is the AllocationFailed message).
func (s *Server) settle(ctx context.Context, a wire.Allocation, node string, why error) (wire.Allocation, error) {
	ctx = context.WithoutCancel(ctx)
	return s.deps.Records.Allocations.Update(ctx, a.UUID, func(cur *wire.Allocation) error {
		cur.NodeUUID, cur.State, cur.LastError = node, wire.AllocationActive, ""
		if why != nil {
			cur.NodeUUID, cur.State = "", wire.AllocationError
			cur.LastError = "Failed to process allocation " + a.UUID + ": " + why.Error() + "."
		}
		cur.UpdatedAt = time.Now().UTC()
		return nil
	})
}

// availableNodes reads every available node from the cache.
func (s *Server) availableNodes() ([]wire.Node, error) {
	var all []wire.Node
	q := transport.NodeQuery{ProvisionState: wire.StateAvailable, Limit: transport.MaxLimit}
	for {
		page, err := s.deps.Nodes.List(q)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < q.Limit {
			return all, nil
		}
		q.Marker = page[len(page)-1].UUID
	}
}

// tryLock takes a node's lock with one attempt: allocation tries the next
// candidate rather than wait for a busy one.
func (s *Server) tryLock(ctx context.Context, uuid, purpose string) (*lock.Lock, error) {
	lk, err := s.deps.Locks.Acquire(ctx, uuid, &lock.Options{Mode: lock.Standard, Purpose: purpose, Attempts: 1})
	if err != nil {
		return s.lockErr(ctx, uuid, err)
	}
	return lk, nil
}

// allocate finds a node for a and reserves it (see the package comment
// above on where and how), leaving a active or in error.
func (s *Server) allocate(ctx context.Context, a wire.Allocation) (wire.Allocation, error) {
	nodes, err := s.availableNodes()
	if err != nil {
		return s.settle(ctx, a, "", err)
	}
	cands, err := provision.Candidates(a, nodes)
	if err != nil {
		return s.settle(ctx, a, "", err)
	}
	rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] }) //nolint:gosec // spreads parallel allocations over nodes; nothing secret
	provision.PreferNamed(a, cands)
	for attempt := range max(s.cfg.LockAttempts, 1) {
		if attempt > 0 {
			if err := wait.Sleep(ctx, s.cfg.LockInterval); err != nil {
				return s.settle(ctx, a, "", err)
			}
		}
		var locked []wire.Node
		for _, n := range cands {
			err := s.underLockWith(ctx, s.tryLock, n.UUID, "allocating", func(ctx context.Context, fence uint64) error {
				return s.reserve(ctx, fence, a, n.UUID, provision.Suits)
			})
			switch {
			case err == nil:
				return s.settle(ctx, a, n.UUID, nil)
			case errors.Is(err, lock.ErrLocked):
				locked = append(locked, n)
			case errors.Is(err, errUnsuitable), wire.CodeOf(err) == wire.CodeNotFound:
			default:
				_, _ = s.settle(ctx, a, "", err)
				return wire.Allocation{}, err
			}
		}
		if len(locked) == 0 {
			return s.settle(ctx, a, "", errors.New("all nodes were filtered out during reservation"))
		}
		cands = locked
	}
	return s.settle(ctx, a, "", fmt.Errorf("could not reserve any of %d suitable nodes", len(cands)))
}

// reserve writes a onto node under its lock (fence) when suits says the
// node, read again under the lock, still may take it.
func (s *Server) reserve(ctx context.Context, fence uint64, a wire.Allocation, node string, suits func(wire.Allocation, wire.Node) bool) error {
	_, err := s.deps.Nodes.UpdateNode(ctx, node, fence, func(cur *wire.Node) error {
		if !suits(a, *cur) {
			return errUnsuitable
		}
		provision.Reserve(a, cur)
		return nil
	})
	return err
}

// backfill records a for node, already deployed (1.58), under the node's
// lock; a node that does not match leaves a in error and answers 400 (409
// when the node is associated with another instance or allocation).
func (s *Server) backfill(ctx context.Context, a wire.Allocation, n wire.Node) (wire.Allocation, error) {
	var why error
	err := s.underLock(ctx, n.UUID, "allocation backfilling", func(ctx context.Context, fence uint64) error {
		_, err := s.deps.Nodes.UpdateNode(ctx, n.UUID, fence, func(cur *wire.Node) error {
			if (cur.InstanceUUID != "" && cur.InstanceUUID != a.UUID) || (cur.AllocationUUID != "" && cur.AllocationUUID != a.UUID) {
				other := cmpOr(cur.InstanceUUID, cur.AllocationUUID)
				why = wire.Errorf(wire.CodeConflict, "Node %s is associated with instance %s.", cur.UUID, other)
				return why
			}
			if err := provision.Backfill(a, *cur); err != nil {
				why = badRequest("Failed to process allocation %s: %v.", a.UUID, err)
				return why
			}
			provision.Reserve(a, cur)
			return nil
		})
		return err
	})
	if err != nil {
		reason := err
		if why != nil {
			reason = why
		}
		_, _ = s.settle(ctx, a, "", reason)
		if why != nil {
			return wire.Allocation{}, why
		}
		return wire.Allocation{}, err
	}
	return s.settle(ctx, a, n.UUID, nil)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *Server) patchAllocation(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	patch, err := decodePatch(body, []string{"name", "extra"}, anyVersion)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	a, err := s.findAllocation(ctx, c.Param("allocation"))
	if err != nil {
		s.fail(c, err)
		return
	}
	coll := s.deps.Records.Allocations
	var claimed string
	updated, err := coll.Update(ctx, a.UUID, func(cur *wire.Allocation) error {
		doc, err := json.Marshal(map[string]any{"name": nullable(cur.Name), "extra": orEmpty(cur.Extra)})
		if err != nil {
			return err
		}
		out, err := applyJSONPatch(patch, doc, s.deps.Nodes.MaxRecordBytes(), false, "allocation "+cur.UUID)
		if err != nil {
			return err
		}
		var next struct {
			Name  *string        `json:"name"`
			Extra map[string]any `json:"extra"`
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&next); err != nil {
			return badRequest("Invalid allocation: %v", err)
		}
		name := deref(next.Name)
		if err := checkAllocationName(name); err != nil {
			return err
		}
		if name != "" && name != cur.Name && name != claimed {
			if err := coll.Claim(ctx, "name", name, cur.UUID); err != nil {
				if errors.Is(err, transport.ErrExists) {
					return wire.Errorf(wire.CodeConflict, "An allocation with name %s already exists.", name)
				}
				return err
			}
			claimed = name
		}
		cur.Name, cur.Extra, cur.UpdatedAt = name, next.Extra, time.Now().UTC()
		return nil
	})
	rctx := context.WithoutCancel(ctx)
	if claimed != "" && (err != nil || updated.Name != claimed) {
		coll.Release(rctx, "name", claimed, a.UUID)
	}
	if err != nil {
		s.fail(c, coded(err))
		return
	}
	if a.Name != "" && updated.Name != a.Name {
		coll.Release(rctx, "name", a.Name, a.UUID)
	}
	s.answerAllocation(c, updated)
}

func (s *Server) deleteAllocation(c *gin.Context) {
	a, err := s.findAllocation(c.Request.Context(), c.Param("allocation"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.dropAllocation(c, a)
}

func (s *Server) deleteNodeAllocation(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	a, err := s.allocationOf(c.Request.Context(), n)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.dropAllocation(c, a)
}

// dropAllocation deletes a and clears its node, under the node's lock,
// when the node's state allows (provision.Deallocatable), as Ironic's
// destroy_allocation does.
func (s *Server) dropAllocation(c *gin.Context, a wire.Allocation) {
	ctx := c.Request.Context()
	records := s.deps.Records
	var err error
	if a.NodeUUID == "" {
		err = records.DeleteAllocation(ctx, a)
	} else {
		err = s.underLock(ctx, a.NodeUUID, "allocation deletion", func(ctx context.Context, fence uint64) error {
			_, err := s.deps.Nodes.UpdateNode(ctx, a.NodeUUID, fence, func(cur *wire.Node) error {
				if err := provision.Deallocatable(a, *cur); err != nil {
					return err
				}
				provision.Release(a, cur)
				return nil
			})
			if err != nil && wire.CodeOf(err) != wire.CodeNotFound {
				return err
			}
			return records.DeleteAllocation(ctx, a)
		})
	}
	if wire.CodeOf(err) == wire.CodeNotFound {
		err = allocationNotFound(a.UUID)
	}
	if err != nil {
		s.fail(c, coded(err))
		return
	}
	s.syncCache(ctx)
	c.Status(http.StatusNoContent)
}

// coded is the coded error inside err, whose message is the one the
// client reads (without the "update …:" context stores add).
func coded(err error) error {
	var we *wire.Error
	if errors.As(err, &we) {
		return we
	}
	return err
}

// patchUpdateStates are the states in which Ironic lets a node with an
// allocation lose its instance_uuid outside maintenance (update_node's
// allowed_update_states, ironic/conductor/manager.py).
var patchUpdateStates = []wire.ProvisionState{wire.StateEnroll, wire.StateInspecting, wire.StateInspectWait,
	wire.StateManageable, wire.StateAvailable}

// instanceChange applies Ironic's update_node rules on instance_uuid to a
// node PATCH (before → n): an instance_uuid is not overwritten by another
// (NodeAssociated), and removing the instance_uuid of a node with an
// allocation ends the allocation — allowed in maintenance or in
// patchUpdateStates only. It returns the allocation to delete once the
// node is written.
func instanceChange(before wire.Node, n *wire.Node) (drop string, err error) {
	if before.InstanceUUID != "" && n.InstanceUUID != "" && n.InstanceUUID != before.InstanceUUID {
		return "", wire.Errorf(wire.CodeConflict, "Node %s is associated with instance %s.", n.UUID, before.InstanceUUID)
	}
	if before.AllocationUUID == "" || before.InstanceUUID == "" || n.InstanceUUID != "" {
		return "", nil
	}
	if !n.Maintenance && !slices.Contains(patchUpdateStates, n.ProvisionState) {
		allowed := make([]string, 0, len(patchUpdateStates))
		for _, st := range patchUpdateStates {
			allowed = append(allowed, string(st))
		}
		return "", wire.Errorf(wire.CodeConflict, "Node %s with an allocation can not have instance_uuid removed unless it is in one of allowed (%s) states or in maintenance mode. Current state is '%s'.",
			n.UUID, strings.Join(allowed, ", "), n.ProvisionState)
	}
	n.AllocationUUID = ""
	return before.AllocationUUID, nil
}
