package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// Node traits (1.37), as ironic/api/controllers/v1/node.py
// NodeTraitsController serves them: a trait is a standard os-traits name or
// CUSTOM_[A-Z0-9_]+, at most 255 characters (api/controllers/v1/utils.py
// TRAITS_SCHEMA), and a node has at most 50 (db/sqlalchemy/api.py
// MAX_TRAITS_PER_NODE, the Placement limit nova schedules with). Each
// write takes the node's lock, as the conductor's add_node_traits and
// remove_node_traits do.

// maxTraits is Ironic's MAX_TRAITS_PER_NODE.
const maxTraits = 50

// standardTraitNames is os-traits' get_traits() (openstack/os-traits at
// d4ac0c17), one name a line: the names Ironic accepts besides CUSTOM_*.
//
//go:embed ostraits.txt
var standardTraitNames string

var (
	standardTraits = strings.Fields(standardTraitNames)
	customTraitRe  = regexp.MustCompile(`^CUSTOM_[A-Z0-9_]+$`)
)

// checkTrait refuses a name that is neither a standard trait nor a custom
// one; what names the value in the message ("trait", "deploy template
// name").
func checkTrait(what, t string) error {
	if len(t) == 0 || len(t) > 255 || (!customTraitRe.MatchString(t) && !slices.Contains(standardTraits, t)) {
		// Ironic's words (its JSON schema's), then what a trait is.
		return badRequest("Invalid input for field/attribute %s. Value: '%s'. '%s' is not valid under any of the given schemas: a trait is a standard os-traits name or CUSTOM_ followed by A-Z, 0-9 and _, at most 255 characters.", what, t, t)
	}
	return nil
}

func (s *Server) listTraits(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"traits": traitsOf(n)})
}

// traitsOf is n's traits as rendered: a list, never null.
func traitsOf(n wire.Node) []string {
	if n.Traits == nil {
		return []string{}
	}
	return n.Traits
}

// setTraits is PUT /v1/nodes/{n}/traits (replace all, body {"traits": […]})
// and PUT /v1/nodes/{n}/traits/{trait} (add one, no body), 204.
func (s *Server) setTraits(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	one := c.Param("trait")
	var replace []string
	if one != "" {
		// Ironic refuses a body with a single trait's PUT.
		if b := strings.TrimSpace(string(body)); b != "" && b != "{}" && b != "[]" && b != "null" {
			s.fail(c, badRequest("No body should be provided when adding a trait"))
			return
		}
		if err := checkTrait("trait", one); err != nil {
			s.fail(c, err)
			return
		}
	} else {
		if replace, err = decodeTraits(body); err != nil {
			s.fail(c, err)
			return
		}
	}
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	err = s.writeTraits(c.Request.Context(), n.UUID, "set node traits", func(cur []string) ([]string, error) {
		if one == "" {
			return replace, nil
		}
		return append(cur, one), nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	if one != "" {
		c.Header("Location", s.base(c)+"/v1/nodes/"+c.Param("node")+"/traits/"+one)
	}
	c.Status(http.StatusNoContent)
}

// decodeTraits reads {"traits": [names]}; anything else is refused with
// Ironic's explanation of the two PUT forms.
func decodeTraits(body []byte) ([]string, error) {
	usage := badRequest("A single node trait may be added via PUT /v1/nodes/<node identifier>/traits/<trait> with no body, " +
		"or all node traits may be replaced via PUT /v1/nodes/<node identifier>/traits with the list of traits specified in the request body.")
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, usage
	}
	m, err := parseObject(body)
	if err != nil {
		return nil, err
	}
	for k := range m {
		if k != "traits" {
			return nil, badRequest("Unknown attribute for node traits: %s.", k)
		}
	}
	raw, ok := m["traits"]
	if !ok || string(raw) == "null" {
		return nil, usage
	}
	var traits []string
	if err := json.Unmarshal(raw, &traits); err != nil {
		return nil, badRequest("Invalid traits: a list of strings is expected: %v", err)
	}
	for _, t := range traits {
		if err := checkTrait("trait", t); err != nil {
			return nil, err
		}
	}
	return traits, nil
}

// deleteTraits is DELETE /v1/nodes/{n}/traits (all) and
// DELETE /v1/nodes/{n}/traits/{trait} (one; 404 when the node lacks it).
func (s *Server) deleteTraits(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	one := c.Param("trait")
	err = s.writeTraits(c.Request.Context(), n.UUID, "remove node traits", func(cur []string) ([]string, error) {
		if one == "" {
			return nil, nil
		}
		if !slices.Contains(cur, one) {
			return nil, wire.Errorf(wire.CodeNotFound, "Node %s doesn't have a trait '%s'", n.UUID, one)
		}
		return slices.DeleteFunc(cur, func(t string) bool { return t == one }), nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// writeTraits replaces a node's traits with change(current) under the
// node's lock: duplicates dropped, sorted, at most maxTraits.
func (s *Server) writeTraits(ctx context.Context, uuid, purpose string, change func(cur []string) ([]string, error)) error {
	var refusal error // the client's error, returned as is, not wrapped by UpdateNode
	err := s.underLock(ctx, uuid, purpose, func(ctx context.Context, fence uint64) error {
		_, err := s.deps.Nodes.UpdateNode(ctx, uuid, fence, func(n *wire.Node) error {
			next, err := change(slices.Clone(n.Traits))
			if err == nil {
				slices.Sort(next)
				next = slices.Compact(next)
				if len(next) > maxTraits {
					err = badRequest("Could not modify traits for node %s as it would exceed the maximum number of traits per node (%d vs. %d)",
						uuid, len(next), maxTraits)
				}
			}
			if err != nil {
				refusal = err
				return err
			}
			n.Traits = nil
			if len(next) > 0 {
				n.Traits = next
			}
			return nil
		})
		if wire.CodeOf(err) == wire.CodeNotFound && refusal == nil {
			return nodeNotFound(uuid)
		}
		return err
	})
	if refusal != nil {
		return refusal
	}
	if err == nil {
		s.syncCache(ctx)
	}
	return err
}
