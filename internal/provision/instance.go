package provision

import (
	"slices"
	"strings"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// CheckInstanceTraits checks instance_info's traits as Ironic does before
// every deploy, whatever the deploy interface, and when validating a node
// (validate_instance_info_traits in ironic/conductor/utils.py): a list of
// strings, each also a trait of the node (wire.Node.Traits). The error
// names the missing ones and carries
// wire.CodeInvalidInput and Ironic's words.
func CheckInstanceTraits(n wire.Node) error {
	raw := n.InstanceInfo["traits"]
	if empty(raw) {
		return nil
	}
	list, ok := raw.([]any)
	if !ok {
		return badTraits(n)
	}
	missing := make([]string, 0, len(list))
	for _, t := range list {
		s, ok := t.(string)
		if !ok {
			return badTraits(n)
		}
		if !slices.Contains(n.Traits, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return wire.Errorf(wire.CodeInvalidInput, "Cannot specify instance traits that are not also set on the node. Node %s is missing traits %s",
		n.UUID, strings.Join(missing, ", "))
}

// empty is Python's falsiness for a decoded JSON value, which Ironic tests
// instance_info's traits with.
func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	case bool:
		return !v
	case float64:
		return v == 0
	}
	return false
}

func badTraits(n wire.Node) error {
	return wire.Errorf(wire.CodeInvalidInput, "Error parsing traits from Node %s instance_info field. A list of strings is expected.", n.UUID)
}
