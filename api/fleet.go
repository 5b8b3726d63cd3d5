package api

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func (s *Server) conductors(ctx context.Context) ([]transport.ConductorInfo, error) {
	cs, err := s.deps.Conductors.Conductors(ctx)
	if err != nil && wire.CodeOf(err) == wire.CodeInternal {
		err = unavailable("conductor registry (NATS)", err)
	}
	return cs, err
}

// renderConductor renders a registry record as Ironic's conductor. A
// conductor serving several groups shows the first as conductor_group and
// all of them in conductor_groups (an ironfleet addition).
func renderConductor(ci transport.ConductorInfo, base string, detail bool) map[string]any {
	group := ""
	if len(ci.Groups) > 0 {
		group = ci.Groups[0]
	}
	out := map[string]any{
		"hostname":        ci.Host,
		"conductor_group": group,
		"alive":           ci.Alive,
		"links":           links(base, "conductors/"+ci.Host),
	}
	if detail {
		out["conductor_groups"] = orEmptySlice(ci.Groups)
		out["drivers"] = orEmptySlice(ci.Drivers)
		out["created_at"] = ironicTime(ci.StartedAt)
		out["updated_at"] = ironicTime(ci.LastSeen)
	}
	return out
}

func orEmptySlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) listConductors(c *gin.Context) {
	cs, err := s.conductors(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	detail := c.Query("detail") == "true" || c.Query("detail") == "True"
	fields := c.Query("fields")
	if detail && fields != "" {
		s.fail(c, badRequest("Can not specify ?detail=True and fields in the same request."))
		return
	}
	out := make([]map[string]any, 0, len(cs))
	for _, ci := range cs {
		doc := renderConductor(ci, s.base(c), detail || fields != "")
		if fields != "" {
			if doc, err = pickFields(doc, fields, version(c), nil); err != nil {
				s.fail(c, err)
				return
			}
		}
		out = append(out, doc)
	}
	c.JSON(http.StatusOK, gin.H{"conductors": out})
}

func (s *Server) getConductor(c *gin.Context) {
	cs, err := s.conductors(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	host := c.Param("host")
	i := slices.IndexFunc(cs, func(ci transport.ConductorInfo) bool { return ci.Host == host })
	if i < 0 {
		s.fail(c, wire.Errorf(wire.CodeNotFound, "Conductor %s could not be found.", host))
		return
	}
	doc := renderConductor(cs[i], s.base(c), true)
	if f := c.Query("fields"); f != "" {
		if doc, err = pickFields(doc, f, version(c), nil); err != nil {
			s.fail(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, doc)
}

// driverFieldVersion is the microversion each of a driver's fields
// appeared in (ironic/api/controllers/v1/driver.py: properties links at
// 1.14, type and the interfaces at 1.30, then hide_fields_in_newer_versions
// for storage 1.33, rescue 1.38, bios 1.40 and firmware 1.86).
var driverFieldVersion = map[hardware.Kind]int{hardware.Storage: 33, hardware.Rescue: 38, hardware.Bios: 40, hardware.Firmware: 86}

// renderDriver renders a hardware type with the live conductors offering
// it, and, with detail from 1.30, its default and enabled interfaces of
// every kind (internal/hardware.Types).
func (s *Server) renderDriver(name, base string, cs []transport.ConductorInfo, v Version, detail bool) map[string]any {
	hosts := []string{}
	for _, ci := range cs {
		if ci.Alive && (len(ci.Drivers) == 0 || slices.Contains(ci.Drivers, name)) {
			hosts = append(hosts, ci.Host)
		}
	}
	out := map[string]any{
		"name":  name,
		"hosts": hosts,
		"links": links(base, "drivers/"+name),
	}
	if v.AtLeast(14) {
		out["properties"] = links(base, "drivers/"+name+"/properties")
	}
	if !v.AtLeast(30) {
		return out
	}
	out["type"] = "dynamic"
	if !detail {
		return out
	}
	t, _ := hardware.Lookup(name)
	for _, k := range hardware.Kinds {
		if minor, ok := driverFieldVersion[k]; ok && !v.AtLeast(minor) {
			continue
		}
		o, ok := t.Offers[k]
		out["default_"+string(k)+"_interface"] = nullable(o.Default)
		enabled := []string{}
		if ok {
			enabled = append(enabled, o.Enabled...)
		}
		out["enabled_"+string(k)+"_interfaces"] = enabled
	}
	return out
}

// driverQuery reads what GET /v1/drivers and /v1/drivers/{d} take, as
// Ironic's DriversController: detail and type from 1.30, fields from 1.77
// (406 below), and not fields with detail.
func driverQuery(c *gin.Context, v Version) (detail bool, fields string, err error) {
	d, err := parseBool("detail", c.Query("detail"))
	if err != nil {
		return false, "", err
	}
	_, hasDetail := c.GetQuery("detail")
	fields, hasFields := c.GetQuery("fields")
	switch {
	case hasDetail && !v.AtLeast(30), hasFields && !v.AtLeast(77):
		return false, "", notAcceptable()
	case hasFields && d != nil && *d:
		return false, "", badRequest("Can not specify ?detail=True and fields in the same request.")
	}
	return d != nil && *d, fields, nil
}

// pickDriverFields keeps the fields asked for (plus links).
func pickDriverFields(doc map[string]any, fields string, v Version) (map[string]any, error) {
	if fields == "" {
		return doc, nil
	}
	return pickFields(doc, fields, v, nil)
}

func (s *Server) listDrivers(c *gin.Context) {
	v := version(c)
	detail, fields, err := driverQuery(c, v)
	if err != nil {
		s.fail(c, err)
		return
	}
	typ, hasType := c.GetQuery("type")
	switch {
	case hasType && !v.AtLeast(30):
		s.fail(c, notAcceptable())
		return
	case hasType && typ != "classic" && typ != "dynamic":
		s.fail(c, badRequest("\"type\" filter must be one of \"classic\" or \"dynamic\", if specified."))
		return
	}
	cs, err := s.conductors(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]map[string]any, 0, len(s.drivers))
	if typ == "classic" {
		// Hardware types are "dynamic" drivers; Ironic has had no classic
		// ones since Rocky.
		c.JSON(http.StatusOK, gin.H{"drivers": out})
		return
	}
	for _, d := range s.drivers {
		doc, err := pickDriverFields(s.renderDriver(d, s.base(c), cs, v, detail), fields, v)
		if err != nil {
			s.fail(c, err)
			return
		}
		out = append(out, doc)
	}
	c.JSON(http.StatusOK, gin.H{"drivers": out})
}

// driverNotFound is Ironic's DriverNotFound.
func driverNotFound(name string) error {
	return wire.Errorf(wire.CodeNotFound, "Could not find the following driver(s) or hardware type(s): %s.", name)
}

func (s *Server) getDriver(c *gin.Context) {
	v := version(c)
	name := c.Param("driver")
	if !slices.Contains(s.drivers, name) {
		s.fail(c, driverNotFound(name))
		return
	}
	_, fields, err := driverQuery(c, v)
	if err != nil {
		s.fail(c, err)
		return
	}
	cs, err := s.conductors(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	doc, err := pickDriverFields(s.renderDriver(name, s.base(c), cs, v, true), fields, v)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, doc)
}

// driverProperties lists the driver_info keys a hardware type reads, with
// their descriptions (Ironic's get_properties of its default interfaces).
func (s *Server) driverProperties(c *gin.Context) {
	name := c.Param("driver")
	if !slices.Contains(s.drivers, name) {
		s.fail(c, driverNotFound(name))
		return
	}
	props, err := s.deps.Drivers.Properties(name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, props)
}

// driverRaidProperties would describe the logical disk properties of a
// hardware type's RAID interface. ironfleet configures no RAID (a node's
// target_raid_config is refused), so every driver answers as Ironic does
// for one without RAID: UnsupportedDriverExtension, turned into a 404 by
// DriverRaidController; 406 below 1.12.
func (s *Server) driverRaidProperties(c *gin.Context) {
	if !version(c).AtLeast(12) {
		s.fail(c, notAcceptable())
		return
	}
	name := c.Param("driver")
	if !slices.Contains(s.drivers, name) {
		s.fail(c, driverNotFound(name))
		return
	}
	s.fail(c, wire.Errorf(wire.CodeNotFound, "Driver %s does not support raid (disabled or not implemented).", name))
}

// lockView is one node's lock as GET /v1/locks shows it.
type lockView struct {
	Node    string  `json:"node"`
	Held    bool    `json:"held"`
	Holder  *string `json:"holder"`
	Purpose *string `json:"purpose"`
	Mode    *string `json:"mode"`
	// Claimed is false while a handed-off ticket waits for its task.
	Claimed       bool       `json:"claimed"`
	Since         any        `json:"since"`
	Expires       any        `json:"expires"`
	LineLength    int        `json:"line_length"`
	LongestWaitMS int64      `json:"longest_wait_ms"`
	Line          []lineView `json:"line"`
}

type lineView struct {
	Holder   string `json:"holder"`
	Purpose  string `json:"purpose"`
	Mode     string `json:"mode"`
	Reserved bool   `json:"reserved"`
	Since    any    `json:"since"`
	WaitedMS int64  `json:"waited_ms"`
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func renderLock(sn lock.Snapshot) lockView {
	v := lockView{
		Node: sn.Resource, Held: sn.Held, Holder: optString(sn.Holder), Purpose: optString(sn.Purpose),
		Mode: optString(sn.Mode), Claimed: sn.Claimed, Since: ironicTime(sn.Since), Expires: ironicTime(sn.Expires),
		LineLength: len(sn.Line), LongestWaitMS: sn.LongestWait().Milliseconds(), Line: make([]lineView, 0, len(sn.Line)),
	}
	for _, w := range sn.Line {
		v.Line = append(v.Line, lineView{Holder: w.Holder, Purpose: w.Purpose, Mode: w.Mode, Reserved: w.Reserved,
			Since: ironicTime(w.Since), WaitedMS: w.Waited.Milliseconds()})
	}
	return v
}

func (s *Server) lockCtx(c *gin.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request.Context(), s.cfg.LockViewTimeout)
}

// listLocks is the lock view: every node held or waited for, the longest
// lines first, then the longest waits.
func (s *Server) listLocks(c *gin.Context) {
	ctx, cancel := s.lockCtx(c)
	defer cancel()
	snaps, err := s.deps.Locks.Summary(ctx)
	if err != nil {
		s.fail(c, unavailable("node lock (Redis)", err))
		return
	}
	slices.SortStableFunc(snaps, func(a, b lock.Snapshot) int {
		if d := len(b.Line) - len(a.Line); d != 0 {
			return d
		}
		return cmp.Compare(b.LongestWait(), a.LongestWait())
	})
	out := make([]lockView, 0, len(snaps))
	for _, sn := range snaps {
		out = append(out, renderLock(sn))
	}
	c.JSON(http.StatusOK, gin.H{"locks": out})
}

func (s *Server) getLock(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx, cancel := s.lockCtx(c)
	defer cancel()
	sn, err := s.deps.Locks.Snapshot(ctx, n.UUID)
	if err != nil {
		s.fail(c, unavailable("node lock (Redis)", err))
		return
	}
	c.JSON(http.StatusOK, renderLock(sn))
}

// openAPI serves an OpenAPI 3 document of the routes in the table.
func (s *Server) openAPI(c *gin.Context) {
	paths := map[string]map[string]any{}
	for _, r := range s.table() {
		p := r.path
		var params []map[string]any
		for _, seg := range strings.Split(p, "/") {
			if name, ok := strings.CutPrefix(seg, ":"); ok {
				p = strings.Replace(p, seg, "{"+name+"}", 1)
				params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]string{"type": "string"}})
			}
		}
		op := map[string]any{
			"summary":    r.summary,
			"parameters": append(params, map[string]any{"name": headerVersion, "in": "header", "schema": map[string]string{"type": "string"}, "description": "microversion 1.1–" + MaxVersion.String() + " or latest"}),
			"responses":  map[string]any{"default": map[string]string{"description": "Ironic's shapes; errors as {\"error_message\": \"<JSON-encoded fault>\"}"}},
		}
		switch r.access {
		case read:
			op["x-access"] = "reader or admin"
		case write:
			op["x-access"] = "admin"
		case agent:
			op["x-access"] = "agent token"
		}
		if r.minVer > 0 {
			op["x-min-version"] = "1." + itoa(r.minVer)
		}
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(r.method)] = op
	}
	for _, p := range []string{"/", "/v1", "/healthz", "/readyz", "/metrics", "/openapi.json"} {
		paths[p] = map[string]any{"get": map[string]any{"summary": "discovery, health, metrics", "responses": map[string]any{"200": map[string]string{"description": "OK"}}}}
	}
	c.JSON(http.StatusOK, gin.H{
		"openapi":    "3.0.3",
		"info":       gin.H{"title": "ironfleet API (Ironic-compatible subset)", "version": MaxVersion.String()},
		"servers":    []gin.H{{"url": s.base(c)}},
		"paths":      paths,
		"components": gin.H{"securitySchemes": gin.H{"basic": gin.H{"type": "http", "scheme": "basic"}}},
	})
}
