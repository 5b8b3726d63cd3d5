package api

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// Keys of values the middleware leaves on the gin.Context.
const (
	ctxRequestID = "ironfleet.request_id"
	ctxVersion   = "ironfleet.version"
	ctxUser      = "ironfleet.user"
)

// route is one served endpoint; the table drives both the router and the
// OpenAPI document, so the two cannot drift.
type route struct {
	method  string
	path    string // gin syntax
	summary string
	access  access
	minVer  int // 0: any version
	handler gin.HandlerFunc
}

// access says who may call a route.
type access int

const (
	public access = iota // no auth (discovery, health, metrics)
	read                 // reader or admin
	write                // admin only
	agent                // the agent token, checked by the handler
)

func (s *Server) table() []route {
	return []route{
		{http.MethodGet, "/v1/nodes", "List nodes (filters, pages, fields)", read, 0, s.listNodes(false)},
		{http.MethodGet, "/v1/nodes/detail", "List nodes with every field", read, 0, s.listNodes(true)},
		{http.MethodPost, "/v1/nodes", "Create a node", write, 0, s.createNode},
		{http.MethodGet, "/v1/nodes/:node", "Show a node by UUID or name", read, 0, s.getNode},
		{http.MethodPatch, "/v1/nodes/:node", "Update a node with a JSON Patch (RFC 6902)", write, 0, s.patchNode},
		{http.MethodDelete, "/v1/nodes/:node", "Delete a node with its ports, portgroups and volume records", write, 0, s.deleteNode},
		{http.MethodGet, "/v1/nodes/:node/states", "Show a node's states", read, 0, s.nodeStates},
		{http.MethodPut, "/v1/nodes/:node/states/provision", "Change a node's provision state (202)", write, 0, s.setProvision},
		{http.MethodGet, "/v1/nodes/:node/states/console", "Show a node's console state", read, 0, s.getConsole},
		{http.MethodPut, "/v1/nodes/:node/states/console", "Enable or disable a node's console (202)", write, 0, s.setConsole},
		{http.MethodGet, "/v1/nodes/:node/console/ws", "Stream a node's enabled console over a WebSocket (binary messages both ways)", write, 0, s.consoleWS},
		{http.MethodPut, "/v1/nodes/:node/states/power", "Change a node's power state (202)", write, 0, s.setPower},
		{http.MethodPut, "/v1/nodes/:node/states/raid", "Set a node's target RAID configuration (204, 1.12)", write, 0, s.setTargetRAID},
		{http.MethodGet, "/v1/nodes/:node/management/boot_device", "Show a node's boot device", read, 0, s.getBootDevice},
		{http.MethodPut, "/v1/nodes/:node/management/boot_device", "Set a node's boot device (204)", write, 0, s.setBootDevice},
		{http.MethodGet, "/v1/nodes/:node/management/boot_device/supported", "List supported boot devices", read, 0, s.supportedBootDevices},
		{http.MethodPut, "/v1/nodes/:node/management/inject_nmi", "Inject a non-maskable interrupt (204)", write, 29, s.injectNMI},
		{http.MethodPut, "/v1/nodes/:node/maintenance", "Put a node in maintenance (202)", write, 0, s.setMaintenance(true)},
		{http.MethodDelete, "/v1/nodes/:node/maintenance", "Take a node out of maintenance (202)", write, 0, s.setMaintenance(false)},
		{http.MethodGet, "/v1/nodes/:node/bios", "List a node's BIOS settings", read, 40, s.listBios},
		{http.MethodGet, "/v1/nodes/:node/bios/:setting", "Show a node's BIOS setting", read, 40, s.getBios},
		{http.MethodGet, "/v1/nodes/:node/firmware", "List a node's firmware components", read, 86, s.listFirmware},
		{http.MethodGet, "/v1/nodes/:node/validate", "Validate a node's driver interfaces", read, 0, s.validateNode},
		{http.MethodGet, "/v1/nodes/:node/children", "List a node's child nodes (UUIDs)", read, 83, s.listChildren},
		{http.MethodGet, "/v1/nodes/:node/vmedia", "Show virtual media (no ironfleet driver has it: 400)", read, 93, s.getVmedia},
		{http.MethodPost, "/v1/nodes/:node/vmedia", "Attach virtual media (no ironfleet driver has it: 400)", write, 89, s.attachVmedia},
		{http.MethodDelete, "/v1/nodes/:node/vmedia", "Detach virtual media (no ironfleet driver has it: 400)", write, 89, s.detachVmedia},
		{http.MethodGet, "/v1/nodes/:node/ports", "List a node's ports", read, 0, s.listPorts(false, true)},
		{http.MethodGet, "/v1/nodes/:node/ports/detail", "List a node's ports with every field", read, 0, s.listPorts(true, true)},
		{http.MethodGet, "/v1/ports", "List ports", read, 0, s.listPorts(false, false)},
		{http.MethodGet, "/v1/ports/detail", "List ports with every field", read, 0, s.listPorts(true, false)},
		{http.MethodPost, "/v1/ports", "Create a port (unique MAC)", write, 0, s.createPort},
		{http.MethodGet, "/v1/ports/:port", "Show a port", read, 0, s.getPort},
		{http.MethodPatch, "/v1/ports/:port", "Update a port with a JSON Patch", write, 0, s.patchPort},
		{http.MethodDelete, "/v1/ports/:port", "Delete a port", write, 0, s.deletePort},
		// Nova's resources: traits, VIFs, volume (api/traits.go, vifs.go, volume.go).
		{http.MethodGet, "/v1/nodes/:node/traits", "List a node's traits", read, 37, s.listTraits},
		{http.MethodPut, "/v1/nodes/:node/traits", "Replace a node's traits (204)", write, 37, s.setTraits},
		{http.MethodDelete, "/v1/nodes/:node/traits", "Remove all of a node's traits (204)", write, 37, s.deleteTraits},
		{http.MethodPut, "/v1/nodes/:node/traits/:trait", "Add a trait to a node (204)", write, 37, s.setTraits},
		{http.MethodDelete, "/v1/nodes/:node/traits/:trait", "Remove a trait from a node (204)", write, 37, s.deleteTraits},
		{http.MethodGet, "/v1/nodes/:node/vifs", "List the VIFs attached to a node", read, 28, s.listVIFs},
		{http.MethodPost, "/v1/nodes/:node/vifs", "Attach a VIF to a free port of a node (204)", write, 28, s.attachVIF},
		{http.MethodDelete, "/v1/nodes/:node/vifs/:vif", "Detach a VIF from a node (204)", write, 28, s.detachVIF},
		{http.MethodGet, "/v1/volume", "Links to the volume connectors and targets", read, 32, s.volumeLinks},
		{http.MethodGet, "/v1/volume/connectors", "List volume connectors (node, fields, detail, pages)", read, 32, s.listConnectors},
		{http.MethodPost, "/v1/volume/connectors", "Create a volume connector", write, 32, s.createConnector},
		{http.MethodGet, "/v1/volume/connectors/:connector", "Show a volume connector", read, 32, s.getConnector},
		{http.MethodPatch, "/v1/volume/connectors/:connector", "Update a volume connector (node powered off)", write, 32, s.patchConnector},
		{http.MethodDelete, "/v1/volume/connectors/:connector", "Delete a volume connector", write, 32, s.deleteConnector},
		{http.MethodGet, "/v1/volume/targets", "List volume targets (node, fields, detail, pages)", read, 32, s.listTargets},
		{http.MethodPost, "/v1/volume/targets", "Create a volume target", write, 32, s.createTarget},
		{http.MethodGet, "/v1/volume/targets/:target", "Show a volume target", read, 32, s.getTarget},
		{http.MethodPatch, "/v1/volume/targets/:target", "Update a volume target (node powered off)", write, 32, s.patchTarget},
		{http.MethodDelete, "/v1/volume/targets/:target", "Delete a volume target", write, 32, s.deleteTarget},
		{http.MethodGet, "/v1/nodes/:node/volume", "Links to a node's volume connectors and targets", read, 32, s.volumeLinks},
		{http.MethodGet, "/v1/nodes/:node/volume/connectors", "List a node's volume connectors", read, 32, s.listConnectors},
		{http.MethodGet, "/v1/nodes/:node/volume/targets", "List a node's volume targets", read, 32, s.listTargets},
		{http.MethodGet, "/v1/portgroups", "List portgroups (node, address, fields, detail, pages)", read, 23, s.listPortgroups(false)},
		{http.MethodGet, "/v1/portgroups/detail", "List portgroups with every field", read, 23, s.listPortgroups(true)},
		{http.MethodPost, "/v1/portgroups", "Create a portgroup (unique name and MAC)", write, 23, s.createPortgroup},
		{http.MethodGet, "/v1/portgroups/:portgroup", "Show a portgroup by UUID or name", read, 23, s.getPortgroup},
		{http.MethodPatch, "/v1/portgroups/:portgroup", "Update a portgroup with a JSON Patch", write, 23, s.patchPortgroup},
		{http.MethodDelete, "/v1/portgroups/:portgroup", "Delete a portgroup without ports", write, 23, s.deletePortgroup},
		{http.MethodGet, "/v1/portgroups/:portgroup/ports", "List a portgroup's ports", read, 24, s.listPortgroupPorts(false)},
		{http.MethodGet, "/v1/portgroups/:portgroup/ports/detail", "List a portgroup's ports with every field", read, 24, s.listPortgroupPorts(true)},
		{http.MethodGet, "/v1/nodes/:node/portgroups", "List a node's portgroups", read, 24, s.listPortgroups(false)},
		{http.MethodGet, "/v1/nodes/:node/portgroups/detail", "List a node's portgroups with every field", read, 24, s.listPortgroups(true)},
		{http.MethodGet, "/v1/chassis", "List chassis (fields, detail, pages)", read, 0, s.listChassis(false)},
		{http.MethodGet, "/v1/chassis/detail", "List chassis with every field", read, 0, s.listChassis(true)},
		{http.MethodPost, "/v1/chassis", "Create a chassis", write, 0, s.createChassis},
		{http.MethodGet, "/v1/chassis/:chassis", "Show a chassis", read, 0, s.getChassis},
		{http.MethodPatch, "/v1/chassis/:chassis", "Update a chassis with a JSON Patch", write, 0, s.patchChassis},
		{http.MethodDelete, "/v1/chassis/:chassis", "Delete a chassis without nodes", write, 0, s.deleteChassis},
		{http.MethodGet, "/v1/chassis/:chassis/nodes", "List a chassis's nodes", read, 0, s.listChassisNodes(false)},
		{http.MethodGet, "/v1/chassis/:chassis/nodes/detail", "List a chassis's nodes with every field", read, 0, s.listChassisNodes(true)},
		{http.MethodGet, "/v1/lookup", "Agent lookup by MAC: the node and a one-time agent token", agent, 22, s.lookup},
		{http.MethodPost, "/v1/heartbeat/:node", "Agent heartbeat with its token (202)", agent, 22, s.heartbeat},
		{http.MethodGet, "/v1/conductors", "List conductors", read, 49, s.listConductors},
		{http.MethodGet, "/v1/conductors/:host", "Show a conductor", read, 49, s.getConductor},
		{http.MethodGet, "/v1/drivers", "List hardware types", read, 0, s.listDrivers},
		{http.MethodGet, "/v1/drivers/:driver", "Show a hardware type", read, 0, s.getDriver},
		// Resources kept in transport.Records: node inventory and history,
		// allocations, deploy templates.
		{http.MethodGet, "/v1/nodes/:node/inventory", "Show what a node's last inspection found", read, 81, s.getInventory},
		{http.MethodGet, "/v1/nodes/:node/history", "List a node's history events", read, 78, s.listHistory},
		{http.MethodGet, "/v1/nodes/:node/history/:event", "Show one event of a node's history", read, 78, s.getHistoryEvent},
		{http.MethodGet, "/v1/nodes/:node/allocation", "Show a node's allocation", read, allocationVersion, s.getNodeAllocation},
		{http.MethodDelete, "/v1/nodes/:node/allocation", "Delete a node's allocation", write, allocationVersion, s.deleteNodeAllocation},
		{http.MethodGet, "/v1/allocations", "List allocations", read, allocationVersion, s.listAllocations},
		{http.MethodPost, "/v1/allocations", "Create an allocation: reserve a matching node, or backfill a deployed one (1.58)", write, allocationVersion, s.createAllocation},
		{http.MethodGet, "/v1/allocations/:allocation", "Show an allocation by UUID or name", read, allocationVersion, s.getAllocation},
		{http.MethodPatch, "/v1/allocations/:allocation", "Update an allocation's name or extra", write, allocationUpdate, s.patchAllocation},
		{http.MethodDelete, "/v1/allocations/:allocation", "Delete an allocation, freeing its node", write, allocationVersion, s.deleteAllocation},
		{http.MethodGet, "/v1/deploy_templates", "List deploy templates", read, 55, s.listTemplates},
		{http.MethodPost, "/v1/deploy_templates", "Create a deploy template", write, 55, s.createTemplate},
		{http.MethodGet, "/v1/deploy_templates/:template", "Show a deploy template by UUID or name", read, 55, s.getTemplate},
		{http.MethodPatch, "/v1/deploy_templates/:template", "Update a deploy template with a JSON Patch", write, 55, s.patchTemplate},
		{http.MethodDelete, "/v1/deploy_templates/:template", "Delete a deploy template", write, 55, s.deleteTemplate},
		{http.MethodGet, "/v1/drivers/:driver/properties", "List the driver_info keys a hardware type reads", read, 0, s.driverProperties},
		{http.MethodGet, "/v1/drivers/:driver/raid/logical_disk_properties", "RAID logical disk properties (404: no RAID)", read, 0, s.driverRaidProperties},
		{http.MethodGet, "/v1/locks", "ironfleet: the node locks held or waited for, longest lines first", read, 0, s.listLocks},
		{http.MethodGet, "/v1/locks/:node", "ironfleet: one node's lock, holder and line", read, 0, s.getLock},
		{http.MethodGet, "/v1/watch", "ironfleet: Server-Sent Events: the lock view's changes and the EVENTS stream, live", read, 0, s.watch},
	}
}

func (s *Server) routes() {
	e := s.engine
	e.Use(s.recover, s.requestID, s.observe)
	e.NoRoute(func(c *gin.Context) { s.fail(c, wire.Errorf(wire.CodeNotFound, "The resource could not be found.")) })
	e.NoMethod(func(c *gin.Context) { s.fail(c, badRequest("Method not allowed.")) })
	e.HandleMethodNotAllowed = true
	e.GET("/", s.root)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", s.serveMetrics)
	e.GET("/openapi.json", s.openAPI)
	e.GET("/v1", s.versions, s.v1)
	for _, r := range s.table() {
		hs := []gin.HandlerFunc{s.versions, s.limitBody}
		if r.minVer > 0 {
			hs = append(hs, requireVersion(r.minVer))
		}
		if r.access == read || r.access == write {
			hs = append(hs, s.authenticate(r.access))
		}
		e.Handle(r.method, r.path, append(hs, r.handler)...)
	}
	s.uiRoutes()
}

// requireVersion answers 404, as Ironic does, for a resource newer than the
// requested microversion.
func requireVersion(minor int) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !version(c).AtLeast(minor) {
			c.Abort()
			status, msg := httpStatus(wire.Errorf(wire.CodeNotFound, "The resource could not be found."))
			c.JSON(status, errorBody(status, msg))
		}
	}
}

// recover turns a panic into a 500 in Ironic's format; the stack is logged.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler { //nolint:errorlint,err113 // a sentinel re-panicked as is
				panic(p)
			}
			s.fail(c, fmt.Errorf("api: panic in %s %s: %v", c.Request.Method, c.FullPath(), p))
		}
	}()
	c.Next()
}

// requestID gives every request an ID, in the response and in the logs.
func (s *Server) requestID(c *gin.Context) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := fmt.Sprintf("req-%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	c.Set(ctxRequestID, id)
	c.Header(headerRequestID, id)
	c.Next()
}

// observe logs each request (debug level; warnings for 5xx) and counts it.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	d := time.Since(start)
	s.metrics.requests.WithLabelValues(c.Request.Method, route, strconv.Itoa(status)).Inc()
	s.metrics.latency.WithLabelValues(c.Request.Method, route).Observe(d.Seconds())
	ctx := c.Request.Context()
	if s.log.Enabled(ctx, -4) || status >= 500 {
		s.log.DebugContext(ctx, "request", "request_id", c.GetString(ctxRequestID), "method", c.Request.Method,
			"path", c.Request.URL.Path, "status", status, "duration", d, "user", c.GetString(ctxUser))
	}
}

// limitBody caps the body; reading past the cap fails with
// *http.MaxBytesError, which httpStatus maps to 413.
func (s *Server) limitBody(c *gin.Context) {
	if c.Request.ContentLength > s.cfg.MaxBodyBytes {
		s.fail(c, &http.MaxBytesError{Limit: s.cfg.MaxBodyBytes})
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	c.Next()
}
