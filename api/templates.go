package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Deploy templates (1.55), as Ironic's DeployTemplatesController
// (ironic/api/controllers/v1/deploy_template.py): a name that is a trait,
// a non-empty list of deploy steps, extra. A deploy of a node whose
// instance traits include a template's name runs its steps
// (provision.TemplateSteps).

// deployInterfaces are the interfaces a deploy step may belong to:
// Ironic's DEPLOYING_INTERFACE_PRIORITY keys (ironic/conductor/steps.py).
var deployInterfaces = []string{"bios", "deploy", "firmware", "management", "power", "raid", "vendor"}

func templateNotFound(ident string) error {
	return wire.Errorf(wire.CodeNotFound, "Deploy template %s could not be found.", ident)
}

func invalidTemplate(format string, args ...any) error {
	return badRequest("Deploy template invalid: %s.", fmt.Sprintf(format, args...))
}

// templateDoc is the writable part of a deploy template.
type templateDoc struct {
	Name  string            `json:"name"`
	Steps []json.RawMessage `json:"steps"`
	Extra map[string]any    `json:"extra"`
}

// stepDoc is one deploy step as a client writes it; priority may be an
// integer or a string of digits (Ironic's DEPLOY_STEP_SCHEMA).
type stepDoc struct {
	Interface *string         `json:"interface"`
	Step      *string         `json:"step"`
	Args      map[string]any  `json:"args"`
	Priority  json.RawMessage `json:"priority"`
}

// decodeTemplate decodes and validates a template document.
func decodeTemplate(raw []byte) (wire.DeployTemplate, error) {
	var d templateDoc
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return wire.DeployTemplate{}, badRequest("Invalid deploy template: %v", err)
	}
	if err := checkTrait("name", d.Name); err != nil {
		return wire.DeployTemplate{}, err
	}
	if len(d.Steps) == 0 {
		return wire.DeployTemplate{}, invalidTemplate("steps must be a non-empty list")
	}
	t := wire.DeployTemplate{Name: d.Name, Extra: d.Extra}
	seen := map[string]bool{}
	var dups []string
	for i, raw := range d.Steps {
		st, err := decodeStep(raw)
		if err != nil {
			return wire.DeployTemplate{}, invalidTemplate("step %d: %v", i, err)
		}
		key := "interface: " + st.Interface + ", step: " + st.Step
		if seen[key] {
			dups = append(dups, key)
		}
		seen[key] = true
		t.Steps = append(t.Steps, st)
	}
	if len(dups) > 0 {
		return wire.DeployTemplate{}, invalidTemplate("Duplicate deploy steps. A template cannot have multiple deploy steps with the same interface and step. Duplicates: %s",
			strings.Join(dups, "; "))
	}
	return t, nil
}

func decodeStep(raw json.RawMessage) (wire.Step, error) {
	var sd stepDoc
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sd); err != nil {
		return wire.Step{}, fmt.Errorf("not a deploy step: %w", err)
	}
	switch {
	case sd.Interface == nil || sd.Step == nil || sd.Args == nil || sd.Priority == nil:
		return wire.Step{}, errors.New("interface, step, args and priority are required")
	case !slices.Contains(deployInterfaces, *sd.Interface):
		return wire.Step{}, fmt.Errorf("interface %q is not one of %s", *sd.Interface, strings.Join(deployInterfaces, ", "))
	case *sd.Step == "":
		return wire.Step{}, errors.New("step must not be empty")
	}
	var prio int
	if err := json.Unmarshal(sd.Priority, &prio); err != nil {
		var s string
		if json.Unmarshal(sd.Priority, &s) != nil || s == "" || strings.Trim(s, "0123456789") != "" {
			return wire.Step{}, fmt.Errorf("priority %s is not a non-negative integer", sd.Priority)
		}
		if prio, err = strconv.Atoi(s); err != nil {
			return wire.Step{}, fmt.Errorf("priority %q: %w", s, err)
		}
	}
	if prio < 0 {
		return wire.Step{}, fmt.Errorf("priority %d is negative", prio)
	}
	return wire.Step{Interface: *sd.Interface, Step: *sd.Step, Args: sd.Args, Priority: prio}, nil
}

// renderTemplate renders t; secrets in step arguments are masked, as
// Ironic's step_sanitize does.
func renderTemplate(t wire.DeployTemplate, base string) map[string]any {
	steps := make([]map[string]any, 0, len(t.Steps))
	for _, st := range t.Steps {
		steps = append(steps, map[string]any{"interface": st.Interface, "step": st.Step, "args": masked(st.Args), "priority": st.Priority})
	}
	return map[string]any{
		"uuid": t.UUID, "name": t.Name, "steps": steps, "extra": orEmpty(t.Extra),
		"created_at": ironicTime(t.CreatedAt), "updated_at": ironicTime(t.UpdatedAt),
		"links": links(base, "deploy_templates/"+t.UUID),
	}
}

// findTemplate resolves a template by UUID or name.
func (s *Server) findTemplate(c *gin.Context) (wire.DeployTemplate, error) {
	ident := c.Param("template")
	ctx := c.Request.Context()
	id := strings.ToLower(ident)
	if !isUUID(ident) {
		owner, err := s.deps.Records.DeployTemplates.Owner(ctx, "name", ident)
		if wire.CodeOf(err) == wire.CodeNotFound {
			return wire.DeployTemplate{}, templateNotFound(ident)
		}
		if err != nil {
			return wire.DeployTemplate{}, err
		}
		id = owner
	}
	t, err := s.deps.Records.DeployTemplates.Get(ctx, id)
	if wire.CodeOf(err) == wire.CodeNotFound {
		return wire.DeployTemplate{}, templateNotFound(ident)
	}
	return t, err
}

func (s *Server) listTemplates(c *gin.Context) {
	v := version(c)
	detail, err := parseBool("detail", c.Query("detail"))
	if err != nil {
		s.fail(c, err)
		return
	}
	fields := c.Query("fields")
	full := detail != nil && *detail
	if full && fields != "" {
		s.fail(c, badRequest("Can not specify ?detail=True and fields in the same request."))
		return
	}
	q, err := readListQuery(c, []string{"created_at", "updated_at", "uuid", "name"})
	if err != nil {
		s.fail(c, err)
		return
	}
	all, err := s.deps.Records.DeployTemplates.List(c.Request.Context(), nil)
	if err != nil {
		s.fail(c, err)
		return
	}
	base := s.base(c)
	docs := make([]map[string]any, 0, len(all))
	for _, t := range all {
		docs = append(docs, renderTemplate(t, base))
	}
	page, err := q.page(docs, templateNotFound)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !full && fields == "" {
		fields = "uuid,name" // Ironic's DEFAULT_RETURN_FIELDS
	}
	out, err := pickAll(page, fields, v)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeList(c, "deploy_templates", out, page, q.limit)
}

func (s *Server) getTemplate(c *gin.Context) {
	t, err := s.findTemplate(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	doc := renderTemplate(t, s.base(c))
	if f := c.Query("fields"); f != "" {
		if doc, err = pickFields(doc, f, version(c), nil); err != nil {
			s.fail(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, doc)
}

func templateNameTaken(name string) error {
	return wire.Errorf(wire.CodeConflict, "A deploy template with name %s already exists.", name)
}

func (s *Server) createTemplate(c *gin.Context) {
	body, err := decodeObject(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	id := wire.NewUUID()
	if raw, ok := body["uuid"]; ok {
		if err := json.Unmarshal(raw, &id); err != nil || !isUUID(id) {
			s.fail(c, badRequest("Expected a UUID for uuid but received %s.", raw))
			return
		}
		id = strings.ToLower(id)
		delete(body, "uuid")
	}
	raw, _ := json.Marshal(body) // re-encoding decoded JSON cannot fail
	t, err := decodeTemplate(raw)
	if err != nil {
		s.fail(c, err)
		return
	}
	t.UUID, t.CreatedAt = id, time.Now().UTC()
	ctx := c.Request.Context()
	coll := s.deps.Records.DeployTemplates
	if err := coll.Claim(ctx, "name", t.Name, t.UUID); err != nil {
		if errors.Is(err, transport.ErrExists) {
			err = templateNameTaken(t.Name)
		}
		s.fail(c, err)
		return
	}
	if err := coll.Create(ctx, t.UUID, t); err != nil {
		coll.Release(context.WithoutCancel(ctx), "name", t.Name, t.UUID)
		if errors.Is(err, transport.ErrExists) {
			err = wire.Errorf(wire.CodeConflict, "A deploy template with UUID %s already exists.", t.UUID)
		}
		s.fail(c, err)
		return
	}
	c.Header("Location", s.base(c)+"/v1/deploy_templates/"+t.UUID)
	c.JSON(http.StatusCreated, renderTemplate(t, s.base(c)))
}

func (s *Server) patchTemplate(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	patch, err := decodePatch(body, []string{"name", "steps", "extra"}, anyVersion)
	if err != nil {
		s.fail(c, err)
		return
	}
	t, err := s.findTemplate(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	coll := s.deps.Records.DeployTemplates
	var claimed string
	updated, err := coll.Update(ctx, t.UUID, func(cur *wire.DeployTemplate) error {
		doc, err := json.Marshal(map[string]any{"name": cur.Name, "steps": cur.Steps, "extra": orEmpty(cur.Extra)})
		if err != nil {
			return err
		}
		out, err := applyJSONPatch(patch, doc, s.deps.Nodes.MaxRecordBytes(), false, "deploy template "+cur.UUID)
		if err != nil {
			return err
		}
		next, err := decodeTemplate(out)
		if err != nil {
			return err
		}
		if next.Name != cur.Name && next.Name != claimed {
			if err := coll.Claim(ctx, "name", next.Name, cur.UUID); err != nil {
				if errors.Is(err, transport.ErrExists) {
					return templateNameTaken(next.Name)
				}
				return err
			}
			claimed = next.Name
		}
		cur.Name, cur.Steps, cur.Extra = next.Name, next.Steps, next.Extra
		cur.UpdatedAt = time.Now().UTC()
		return nil
	})
	rctx := context.WithoutCancel(ctx)
	if claimed != "" && (err != nil || updated.Name != claimed) {
		coll.Release(rctx, "name", claimed, t.UUID)
	}
	if err != nil {
		if wire.CodeOf(err) == wire.CodeNotFound {
			err = templateNotFound(t.UUID)
		}
		s.fail(c, coded(err))
		return
	}
	if updated.Name != t.Name {
		coll.Release(rctx, "name", t.Name, t.UUID)
	}
	c.JSON(http.StatusOK, renderTemplate(updated, s.base(c)))
}

func (s *Server) deleteTemplate(c *gin.Context) {
	t, err := s.findTemplate(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	coll := s.deps.Records.DeployTemplates
	if err := coll.Delete(ctx, t.UUID); err != nil {
		if wire.CodeOf(err) == wire.CodeNotFound {
			err = templateNotFound(t.UUID)
		}
		s.fail(c, err)
		return
	}
	coll.Release(context.WithoutCancel(ctx), "name", t.Name, t.UUID)
	c.Status(http.StatusNoContent)
}
