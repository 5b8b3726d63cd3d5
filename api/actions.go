package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/internal/dispatch"
	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/internal/rootdevice"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func (s *Server) nodeStates(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeNode(c, http.StatusOK, &n, "", nodeStatesView(version(c)))
}

// act runs a user action: validate on the cached node, take the node's lock
// in standard mode (409 NodeLocked), re-read it under the lock, then
// dispatch the operation (internal/dispatch): re-validated against the
// node's rules, its first move made (as Ironic's conductor makes it before
// its RPC returns, so that a client polling right after the 202 — the
// baremetal CLI's --wait — sees "verifying" or "deploying", not the stable
// state it left), the task published and the lock handed to its ticket. A
// publish failure leaves the node as it was and releases the lock (503).
func (s *Server) act(c *gin.Context, n wire.Node, purpose string, op wire.Operation, params json.RawMessage) error {
	if _, err := provision.Accept(n, op); err != nil && dispatch.Unfinished(n, op) == nil {
		return s.lockedFirst(c.Request.Context(), n, err)
	}
	if err := s.underLimit(n, op); err != nil {
		return err
	}
	// Nothing is written for an action whose task cannot be published: with
	// NATS away, the first move and the publish would each wait out their
	// deadlines and the undo after them (a minute in all) before the 503.
	if err := s.deps.Tasks.Connected(); err != nil {
		return unavailable("task bus (NATS)", err)
	}
	ctx := c.Request.Context()
	lk, err := s.lockNode(ctx, n.UUID, purpose)
	if err != nil {
		return err
	}
	// From here the lock is ours: finish on a context the client cannot cancel.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockedWorkTimeout)
	defer cancel()
	fresh, err := s.deps.Nodes.Get(wctx, n.UUID)
	if wire.CodeOf(err) == wire.CodeNotFound {
		err = nodeNotFound(n.UUID)
	}
	if err == nil {
		err = s.admitted(wctx, fresh, op, func() error {
			_, err := s.dispatch.Request(wctx, lk, fresh, op, requestedBy(c), params)
			return err
		})
	}
	if err != nil {
		s.release(wctx, lk)
		if errors.Is(err, dispatch.ErrNotPublished) && wire.CodeOf(err) != wire.CodeInvalidInput {
			return unavailable("task bus (NATS)", err)
		}
		return err
	}
	s.metrics.tasks.WithLabelValues(string(op)).Inc()
	return nil
}

// lockedFirst turns the refusal of an impossible transition into 409
// NodeLocked while someone holds the node's lock, as Ironic's API does
// (ironic/api/controllers/v1/node.py provision: a node with a reservation
// answers NodeLocked before InvalidStateRequested, so that a client asking
// for anything while the node is being worked on keeps getting 409).
func (s *Server) lockedFirst(ctx context.Context, n wire.Node, err error) error {
	var invalid *provision.InvalidTransitionError
	if !errors.As(err, &invalid) {
		return err
	}
	if holder := s.reservation(ctx, n.UUID); holder != "" {
		return fmt.Errorf("api: %w", &lock.LockedError{Resource: n.UUID, Holder: holder})
	}
	return err
}

// admitted runs dispatch, the dispatch of op on n, unless n's group is at
// the limit op counts against (underLimit). So that a burst of requests
// cannot all read the same count, each limited dispatch of this process
// holds a reservation (admissions) from before its first move until the
// cache shows that move, and the count includes the reservations the cache
// does not show yet; only the count and the reservation are taken one at a
// time, so dispatches run side by side. A count at the limit is taken
// again on a cache brought up to date first (Sync) before it refuses. API
// processes racing each other may still overshoot, and conductors hold
// back what does.
func (s *Server) admitted(ctx context.Context, n wire.Node, op wire.Operation, dispatch func() error) error {
	if _, _, _, limited := provision.Limit(op); !limited {
		return dispatch()
	}
	r, err := s.admit(ctx, n, op)
	if err != nil {
		return err
	}
	err = dispatch()
	s.admissions.done(r, err == nil)
	return err
}

// admit counts n's group's nodes at op's kind of work, its reservations
// included, and reserves a place for n under the limit.
func (s *Server) admit(ctx context.Context, n wire.Node, op wire.Operation) (*admission, error) {
	s.admissions.mu.Lock()
	defer s.admissions.mu.Unlock()
	err := s.underLimitLocked(n, op)
	var limit *LimitError
	if errors.As(err, &limit) {
		if err := s.deps.Nodes.Sync(ctx); err != nil {
			return nil, unavailable("node inventory (NATS)", err)
		}
		err = s.underLimitLocked(n, op)
	}
	if err != nil {
		return nil, err
	}
	return s.admissions.reserve(n.UUID, n.ConductorGroup), nil
}

// admissions are this process's limited dispatches the node cache may not
// show yet (admitted).
type admissions struct {
	mu sync.Mutex
	// byGroup holds the reservations of each conductor group.
	byGroup map[string][]*admission
}

// admission is one limited dispatch: of node, begun at start.
type admission struct {
	node  string
	start time.Time
	// ended is when its dispatch ended (zero while it runs).
	ended time.Time
}

// admissionLinger bounds how long an ended dispatch's reservation waits
// for the cache to show its move (against a clock stepped backwards, which
// would leave ProvisionUpdatedAt before start forever). A cache that far
// behind is stalled and being rebuilt.
const admissionLinger = 10 * time.Second

func (a *admissions) reserve(node, group string) *admission {
	r := &admission{node: node, start: time.Now()}
	if a.byGroup == nil {
		a.byGroup = map[string][]*admission{}
	}
	a.byGroup[group] = append(a.byGroup[group], r)
	return r
}

// done ends r's dispatch: a published one stays reserved until the cache
// shows its first move (unseen drops it), a failed one (nothing moved) is
// dropped now.
func (a *admissions) done(r *admission, published bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r.ended = time.Now()
	if published {
		return
	}
	for g, rs := range a.byGroup {
		a.byGroup[g] = slices.DeleteFunc(rs, func(x *admission) bool { return x == r })
	}
}

// unseen counts group's reservations, other than node's, whose first move
// the cache (cached) does not show yet, and drops those of ended dispatches
// it shows: a node whose provision_updated_at is at or after its dispatch
// began has been moved by it (the dispatch held its lock). a.mu must be
// held.
func (a *admissions) unseen(group, node string, cached func(uuid string) (wire.Node, bool)) int {
	if len(a.byGroup[group]) == 0 {
		return 0
	}
	now := time.Now()
	count := 0
	a.byGroup[group] = slices.DeleteFunc(a.byGroup[group], func(r *admission) bool {
		n, ok := cached(r.node)
		shown := ok && !n.ProvisionUpdatedAt.Before(r.start)
		if !r.ended.IsZero() && (shown || !ok || now.Sub(r.ended) > admissionLinger) {
			return true
		}
		if !shown && r.node != node {
			count++
		}
		return false
	})
	return count
}

// underLimit refuses op with 503 when n's conductor group already has as
// many nodes at the kind of work op starts as its limit allows (Ironic's
// ConcurrentActionLimit: LimitError). The count is read from the cache; two requests racing
// may overshoot, and conductors hold back what did (they queue it).
func (s *Server) underLimit(n wire.Node, op wire.Operation) error {
	s.admissions.mu.Lock()
	defer s.admissions.mu.Unlock()
	return s.underLimitLocked(n, op)
}

// underLimitLocked is underLimit with s.admissions.mu held.
func (s *Server) underLimitLocked(n wire.Node, op wire.Operation) error {
	states, kind, deploy, ok := provision.Limit(op)
	if !ok {
		return nil
	}
	maximum := s.cfg.MaxCleans
	if deploy {
		maximum = s.cfg.MaxDeploys
	}
	group := n.ConductorGroup
	busy := s.admissions.unseen(group, n.UUID, s.deps.Nodes.Node)
	for _, st := range states {
		nodes, err := s.deps.Nodes.List(transport.NodeQuery{ProvisionState: st, ConductorGroup: &group, Limit: transport.MaxLimit})
		if err != nil {
			return err
		}
		for _, o := range nodes {
			if o.UUID != n.UUID {
				busy++
			}
		}
	}
	if busy >= maximum {
		return &LimitError{Kind: kind}
	}
	return nil
}

// accepted answers 202 with Ironic's Location for an action on n.
func (s *Server) accepted(c *gin.Context, n wire.Node) {
	c.Header("Location", s.base(c)+"/v1/nodes/"+n.UUID+"/states")
	c.Status(http.StatusAccepted)
}

// checkKeys refuses keys not in allowed, with Ironic's words.
func checkKeys(body map[string]json.RawMessage, allowed ...string) error {
	var extra []string
	for k := range body {
		if !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return badRequest("Unexpected arguments: %s", strings.Join(extra, ", "))
	}
	return nil
}

func stringField(body map[string]json.RawMessage, key string) (string, error) {
	raw, ok := body[key]
	if !ok {
		return "", badRequest("Missing argument: %q", key)
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", badRequest("Invalid %s: %s is not a string.", key, raw)
	}
	return v, nil
}

func badAction(action string, n wire.Node, state string) error {
	if state == "" {
		state = "None"
	}
	return badRequest("The requested action %q can not be performed on node %q while it is in state %q.", action, n.UUID, state)
}

func (s *Server) setProvision(c *gin.Context) {
	v := version(c)
	n, body, target, err := s.actionRequest(c, "target", "target", "configdrive", "clean_steps", "deploy_steps", "disable_ramdisk",
		"rescue_password", "service_steps")
	if err != nil {
		s.fail(c, err)
		return
	}
	op, err := provision.ParseTarget(target)
	if err != nil {
		s.fail(c, badAction(target, n, string(n.ProvisionState)))
		return
	}
	if !v.AtLeast(provision.TargetVersion(target)) {
		s.fail(c, notAcceptable())
		return
	}
	// Ironic's provision checks the config drive before the transition.
	cd, err := configDriveOf(op, v, body["configdrive"])
	if err != nil {
		s.fail(c, err)
		return
	}
	// A retry of a request whose answer was lost may find the node in the
	// first move the request made, its task never started
	// (dispatch.Unfinished): it is checked as the request was, from the
	// state the move left, and act takes the move over.
	asked := n
	if u := dispatch.Unfinished(n, op); u != nil {
		asked.ProvisionState = u.Move.From
	}
	if err := s.checkTransition(c, asked, op, body); err != nil {
		s.fail(c, err)
		return
	}
	if op == wire.OpInspect {
		// Ironic's inspect_hardware validates the inspect interface before
		// anything moves: no-inspect refuses with 400.
		if err := hardware.Unsupported(n, hardware.Inspect); err != nil {
			s.fail(c, err)
			return
		}
	}
	// The steps are checked once the transition is possible: an
	// impossible one is refused first (400, or 409 on a locked node, by
	// act), as Ironic's provision checks the state machine before the
	// request's steps.
	var params json.RawMessage
	if _, err := provision.Apply(asked.UUID, asked.ProvisionState, op); err == nil {
		if params, err = stepParams(asked, op, v, body, cd); err != nil {
			s.fail(c, err)
			return
		}
	}
	if err := s.act(c, n, provision.TargetOf(op), op, params); err != nil {
		// Ironic names the target as asked ("deploy", not "active").
		var invalid *provision.InvalidTransitionError
		if errors.As(err, &invalid) {
			invalid.Action = target
		}
		s.fail(c, err)
		return
	}
	s.accepted(c, n)
}

// checkTransition checks, in Ironic's order (its provision() then
// _do_provision_action), what a possible transition needs beyond the
// node's state: no rescue_password but for rescue; the microversion of the
// transition itself (unhold 1.85, service 1.87, abort from inspect wait
// 1.41 or from wait call-back 1.110: 406 below); no service_steps but for
// service; a rescue's password and rescue interface; a service's steps. An
// impossible transition is left to act (400, or 409 while the node is
// locked).
func (s *Server) checkTransition(c *gin.Context, n wire.Node, op wire.Operation, body map[string]json.RawMessage) error {
	tr, err := provision.Apply(n.UUID, n.ProvisionState, op)
	if err != nil {
		return nil
	}
	if _, ok := body["rescue_password"]; ok && op != wire.OpRescue {
		return badRequest("\"rescue_password\" is only valid when setting target provision state to rescue")
	}
	if !version(c).AtLeast(tr.MinVersion) {
		return notAcceptable()
	}
	if _, ok := body["service_steps"]; ok && op != wire.OpService {
		return badRequest("\"service_steps\" is only valid when setting target provision state to service")
	}
	switch op {
	case wire.OpRescue:
		var pw string
		if raw, ok := body["rescue_password"]; ok {
			if json.Unmarshal(raw, &pw) != nil {
				return badRequest("Invalid rescue_password: %s is not a string.", raw)
			}
		}
		if strings.TrimSpace(pw) == "" {
			return badRequest("A non-empty \"rescue_password\" is required when setting target provision state to rescue")
		}
		if hardware.Of(n, hardware.Rescue) == hardware.NoRescue {
			// Ironic's conductor answers InstanceRescueFailure (500);
			// it is the client's to fix, so 400 (README).
			return badRequest("Failed to rescue instance %s for node %s: Validation failed: Driver %s does not support rescue (disabled or not implemented).",
				cmp.Or(n.InstanceUUID, "None"), n.UUID, n.Driver)
		}
	case wire.OpService:
		return checkServiceSteps(body["service_steps"])
	case wire.OpDeploy, wire.OpRebuild:
		// Ironic's do_node_deploy validates the deploy interface before
		// its RPC returns; the agent deploy's validate checks the root
		// device hints (CustomAgentDeploy.validate), fake deploy nothing.
		if err := checkRootDevice(n); err != nil {
			return badRequest("Failed to validate deploy or power info for node %s. Error: %s", n.UUID, err)
		}
	}
	return nil
}

// checkRootDevice checks the node's root device hints (instance_info's,
// else properties') for a deploy interface that writes a disk.
func checkRootDevice(n wire.Node) error {
	if hardware.Of(n, hardware.Deploy) == hardware.Fake {
		return nil
	}
	_, err := rootdevice.ForDeploy(n.UUID, n.InstanceInfo, n.Properties)
	return err
}

// checkServiceSteps validates service_steps as Ironic's _STEPS_SCHEMA
// does (ironic/api/controllers/v1/node.py): a non-empty list of objects
// with an interface and a step name, and args, nothing else.
func checkServiceSteps(raw json.RawMessage) error {
	var steps []map[string]json.RawMessage
	if len(raw) == 0 || string(raw) == "null" {
		return badRequest("\"service_steps\" is required when setting target provision state to service")
	}
	if err := json.Unmarshal(raw, &steps); err != nil {
		return badRequest("Invalid service_steps: %s is not a list of objects.", raw)
	}
	if len(steps) == 0 {
		return badRequest("\"service_steps\" is required when setting target provision state to service")
	}
	for i, st := range steps {
		for k := range st {
			if k != "interface" && k != "step" && k != "args" {
				return badRequest("Invalid service_steps: step %d: additional property %q is not allowed.", i, k)
			}
		}
		var iface, name string
		if json.Unmarshal(st["interface"], &iface) != nil || !slices.Contains(hardware.Kinds, hardware.Kind(iface)) {
			return badRequest("Invalid service_steps: step %d: \"interface\" must be one of %s.", i, kindNames())
		}
		if json.Unmarshal(st["step"], &name) != nil || name == "" {
			return badRequest("Invalid service_steps: step %d: \"step\" must be a non-empty string.", i)
		}
		if a, ok := st["args"]; ok {
			var args map[string]any
			if json.Unmarshal(a, &args) != nil || args == nil {
				return badRequest("Invalid service_steps: step %d: \"args\" must be an object.", i)
			}
		}
	}
	return nil
}

func kindNames() string {
	names := make([]string, len(hardware.Kinds))
	for i, k := range hardware.Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// actionRequest reads what every action handler starts with, in Ironic's
// order of complaints: a JSON object body, the node, no unexpected keys,
// and the one string field the action names (field).
func (s *Server) actionRequest(c *gin.Context, field string, allowed ...string) (wire.Node, map[string]json.RawMessage, string, error) {
	body, err := decodeObject(c)
	if err != nil {
		return wire.Node{}, nil, "", err
	}
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		return wire.Node{}, nil, "", err
	}
	if err := checkKeys(body, allowed...); err != nil {
		return wire.Node{}, nil, "", err
	}
	v, err := stringField(body, field)
	if err != nil {
		return wire.Node{}, nil, "", err
	}
	return n, body, v, nil
}

// setPower changes a node's power state, checking as Ironic's
// NodeStatesController.power does and in its order: soft targets and
// timeout need 1.27 (406), timeout an integer ≥ 1, the target one of
// ALLOWED_TARGET_POWER_STATES, the node not cleaning; then, as Ironic's
// conductor does before it answers, the power interface must support the
// target (hardware.CheckPowerTarget).
func (s *Server) setPower(c *gin.Context) {
	n, body, target, err := s.actionRequest(c, "target", "target", "timeout")
	if err != nil {
		s.fail(c, err)
		return
	}
	p := wire.PowerParams{Target: wire.PowerState(target)}
	raw, hasTimeout := body["timeout"]
	if hasTimeout && string(raw) == "null" {
		hasTimeout = false
	}
	soft := p.Target == wire.PowerSoftOff || p.Target == wire.PowerSoftRebooting
	if (soft || hasTimeout) && !version(c).AtLeast(27) {
		s.fail(c, notAcceptable())
		return
	}
	if hasTimeout {
		if p.TimeoutSeconds, err = integerArg("timeout", raw); err != nil {
			s.fail(c, err)
			return
		}
		if p.TimeoutSeconds < 1 {
			s.fail(c, badRequest("timeout has to be positive integer"))
			return
		}
	}
	switch p.Target {
	case wire.PowerOn, wire.PowerOff, wire.PowerRebooting, wire.PowerSoftOff, wire.PowerSoftRebooting:
	default:
		s.fail(c, badAction(target, n, string(n.PowerState)))
		return
	}
	if n.ProvisionState == wire.StateCleaning || n.ProvisionState == wire.StateCleanWait {
		s.fail(c, badAction(target, n, string(n.ProvisionState)))
		return
	}
	if err := hardware.CheckPowerTarget(n, p.Target); err != nil {
		s.fail(c, err)
		return
	}
	params, _ := json.Marshal(p) // plain struct
	if err := s.act(c, n, "power "+target, wire.OpPower, params); err != nil {
		s.fail(c, err)
		return
	}
	s.accepted(c, n)
}

// integerArg reads an integer argument as Ironic's args.integer does: a
// JSON integer or a string of one.
func integerArg(name string, raw json.RawMessage) (int, error) {
	var v any
	_ = json.Unmarshal(raw, &v) // decoded JSON re-decodes
	switch x := v.(type) {
	case float64:
		if x == float64(int(x)) {
			return int(x), nil
		}
	case string:
		if i, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return i, nil
		}
	}
	return 0, badRequest("Expected an integer for %s: %s", name, strings.Trim(string(raw), `"`))
}

// injectNMI injects a non-maskable interrupt (1.29; 404 below, as Ironic):
// refused with Ironic's UnsupportedDriverExtension when the node's
// management interface cannot, else published under the node's lock like
// the boot device; 204 as Ironic's InjectNmiController.put.
func (s *Server) injectNMI(c *gin.Context) {
	var body map[string]json.RawMessage
	if c.Request.ContentLength != 0 {
		var err error
		if body, err = decodeObject(c); err != nil {
			s.fail(c, err)
			return
		}
	}
	n, err := s.findNode(c, c.Param("node"))
	if err == nil {
		err = checkKeys(body)
	}
	if err == nil {
		err = hardware.CheckInjectNMI(n)
	}
	if err == nil {
		err = s.act(c, n, "inject nmi", wire.OpInjectNMI, nil)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) getBootDevice(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	var dev any
	if n.BootDevice != "" {
		dev = string(n.BootDevice)
	}
	c.JSON(http.StatusOK, gin.H{"boot_device": dev, "persistent": n.BootDevicePersistent})
}

func (s *Server) supportedBootDevices(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"supported_boot_devices": hardware.BootDevices(n)})
}

func (s *Server) setBootDevice(c *gin.Context) {
	n, body, dev, err := s.actionRequest(c, "boot_device", "boot_device", "persistent")
	if err != nil {
		s.fail(c, err)
		return
	}
	p := wire.BootDeviceParams{Device: wire.BootDevice(dev)}
	if !slices.Contains(hardware.BootDevices(n), p.Device) {
		// Ironic's management interfaces refuse with these words
		// (FakeManagement.set_boot_device, ironic/drivers/modules/fake.py).
		s.fail(c, badRequest("Invalid boot device %s specified.", dev))
		return
	}
	if raw, ok := body["persistent"]; ok {
		if err := json.Unmarshal(raw, &p.Persistent); err != nil {
			s.fail(c, badRequest("Invalid persistent %s: want true or false.", raw))
			return
		}
	}
	params, _ := json.Marshal(p) // plain struct
	if err := s.act(c, n, "boot device", wire.OpBootDevice, params); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// setMaintenance turns maintenance on (with an optional reason) or off,
// under the node's lock as Ironic's update_node does.
func (s *Server) setMaintenance(on bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		n, err := s.findNode(c, c.Param("node"))
		if err != nil {
			s.fail(c, err)
			return
		}
		reason := c.Query("reason")
		if on && c.Request.ContentLength != 0 {
			body, err := decodeObject(c)
			if err == nil {
				err = checkKeys(body, "reason")
			}
			if err == nil {
				if _, ok := body["reason"]; ok {
					reason, err = stringField(body, "reason")
				}
			}
			if err != nil {
				s.fail(c, err)
				return
			}
		}
		ctx := c.Request.Context()
		err = s.underLock(ctx, n.UUID, "node update", func(ctx context.Context, fence uint64) error {
			_, err := s.deps.Nodes.UpdateNode(ctx, n.UUID, fence, func(cur *wire.Node) error {
				cur.Maintenance = on
				cur.MaintenanceReason = reason
				if !on {
					cur.MaintenanceReason, cur.Fault = "", ""
				}
				return nil
			})
			return err
		})
		if wire.CodeOf(err) == wire.CodeNotFound {
			err = nodeNotFound(n.UUID)
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		s.syncCache(ctx)
		s.accepted(c, n)
	}
}

// validateNode validates each of the node's interfaces (not vendor), as
// Ironic's validate_driver_interfaces, with what can be checked without
// hardware: a no-* interface is false with Ironic's UnsupportedDriverExtension
// words (ironic/drivers/modules/noop.py), a fake one true; power,
// management and agent inspection check driver_info; a direct deploy needs
// instance_info.image_source and a valid boot mode (wire.NodeBootMode);
// every deploy checks instance_info's traits;
// PXE and iPXE boot need a PXE-enabled port. firmware is listed from 1.86,
// where the node shows its firmware_interface.
func (s *Server) validateNode(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	ports, err := s.deps.Ports.Ports(transport.PortQuery{NodeUUID: n.UUID})
	if err != nil {
		s.fail(c, err)
		return
	}
	check := func(k hardware.Kind) error {
		if err := hardware.Unsupported(n, k); err != nil {
			return err
		}
		switch impl := hardware.Of(n, k); {
		case k == hardware.Deploy:
			if impl != hardware.Fake {
				if src, _ := n.InstanceInfo["image_source"].(string); src == "" {
					return errors.New("missing instance_info.image_source")
				}
				if _, err := wire.NodeBootMode(n); err != nil {
					return err
				}
			}
			if err := checkRootDevice(n); err != nil {
				return err
			}
			return provision.CheckInstanceTraits(n)
		case impl == hardware.Fake || impl == hardware.Noop:
			return nil
		case k == hardware.Power || k == hardware.Management || k == hardware.Inspect:
			return s.deps.Drivers.ValidateDriverInfo(n)
		case k == hardware.Boot:
			if !slices.ContainsFunc(ports, func(p wire.Port) bool { return p.PXEEnable }) {
				return errors.New("no PXE-enabled port: create a port with pxe_enabled=true")
			}
		}
		return nil
	}
	out := gin.H{}
	for _, k := range hardware.Kinds {
		if k == hardware.Vendor || k == hardware.Firmware && !version(c).AtLeast(86) {
			continue
		}
		if err := check(k); err != nil {
			out[string(k)] = gin.H{"result": false, "reason": err.Error()}
			continue
		}
		out[string(k)] = gin.H{"result": true}
	}
	c.JSON(http.StatusOK, out)
}
