package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/internal/dispatch"
	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func (s *Server) nodeStates(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, renderStates(n, version(c)))
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
	if _, err := provision.Accept(n, op); err != nil {
		return err
	}
	if err := s.underLimit(n, op); err != nil {
		return err
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

// admitted runs dispatch, the dispatch of op on n, unless n's group is at
// the limit op counts against (underLimit). For a limited operation the
// count and the dispatch happen one at a time in this process, on a cache
// brought up to date first (Sync), so that a burst of requests cannot all
// read the same count; API processes racing each other may still overshoot,
// and conductors hold back what does.
func (s *Server) admitted(ctx context.Context, n wire.Node, op wire.Operation, dispatch func() error) error {
	if _, _, _, limited := provision.Limit(op); !limited {
		return dispatch()
	}
	s.admission.Lock()
	defer s.admission.Unlock()
	if err := s.deps.Nodes.Sync(ctx); err != nil {
		return unavailable("node inventory (NATS)", err)
	}
	if err := s.underLimit(n, op); err != nil {
		return err
	}
	return dispatch()
}

// underLimit refuses op with 503 when n's conductor group already has as
// many nodes at the kind of work op starts as its limit allows (Ironic's
// ConcurrentActionLimit: LimitError). The count is read from the cache; two requests racing
// may overshoot, and conductors hold back what did (they queue it).
func (s *Server) underLimit(n wire.Node, op wire.Operation) error {
	states, kind, deploy, ok := provision.Limit(op)
	if !ok {
		return nil
	}
	maximum := s.cfg.MaxCleans
	if deploy {
		maximum = s.cfg.MaxDeploys
	}
	group := n.ConductorGroup
	busy := 0
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

// verbVersion is the microversion each provision target appeared in.
var verbVersion = map[string]int{"manage": 4, "provide": 4, "inspect": 6, "abort": 13, "clean": 15, "deploy": 73, "undeploy": 73}

func badAction(action string, n wire.Node, state string) error {
	if state == "" {
		state = "None"
	}
	return badRequest("The requested action %q can not be performed on node %q while it is in state %q.", action, n.UUID, state)
}

func (s *Server) setProvision(c *gin.Context) {
	v := version(c)
	n, body, target, err := s.actionRequest(c, "target", "target", "configdrive", "clean_steps", "deploy_steps", "disable_ramdisk")
	if err != nil {
		s.fail(c, err)
		return
	}
	op, err := provision.ParseTarget(target)
	if err != nil {
		s.fail(c, badAction(target, n, string(n.ProvisionState)))
		return
	}
	if minor, ok := verbVersion[target]; ok && !v.AtLeast(minor) {
		s.fail(c, notAcceptable())
		return
	}
	params, err := stepParams(n, op, v, body)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.act(c, n, provision.TargetOf(op), op, params); err != nil {
		s.fail(c, err)
		return
	}
	s.accepted(c, n)
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
	if _, err := s.findNode(c, c.Param("node")); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"supported_boot_devices": []wire.BootDevice{wire.BootPXE, wire.BootDisk}})
}

func (s *Server) setBootDevice(c *gin.Context) {
	n, body, dev, err := s.actionRequest(c, "boot_device", "boot_device", "persistent")
	if err != nil {
		s.fail(c, err)
		return
	}
	p := wire.BootDeviceParams{Device: wire.BootDevice(dev)}
	if p.Device != wire.BootPXE && p.Device != wire.BootDisk {
		s.fail(c, badRequest("Invalid boot device %q: want pxe or disk.", dev))
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

// validateNode checks what can be checked without hardware: driver_info
// for power and management, instance_info for deploy, a PXE port for boot.
func (s *Server) validateNode(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	result := func(err error) gin.H {
		if err != nil {
			return gin.H{"result": false, "reason": err.Error()}
		}
		return gin.H{"result": true}
	}
	unsupported := gin.H{"result": nil, "reason": "not supported by ironfleet"}
	drv := s.deps.Drivers.ValidateDriverInfo(n)
	var deploy error
	if src, _ := n.InstanceInfo["image_source"].(string); src == "" {
		deploy = errors.New("missing instance_info.image_source")
	}
	var boot error
	ports, err := s.deps.Ports.Ports(transport.PortQuery{NodeUUID: n.UUID})
	if err != nil {
		s.fail(c, err)
		return
	}
	if !slices.ContainsFunc(ports, func(p wire.Port) bool { return p.PXEEnable }) {
		boot = errors.New("no PXE-enabled port: create a port with pxe_enabled=true")
	}
	c.JSON(http.StatusOK, gin.H{
		"boot": result(boot), "deploy": result(deploy), "management": result(drv), "power": result(drv),
		"network": result(nil), "storage": result(nil), "inspect": result(drv),
		"bios": unsupported, "console": unsupported, "raid": unsupported, "rescue": unsupported,
	})
}
