package provision

import (
	"slices"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// InstanceTraits are the traits a deploy of n was asked for: the list in
// its instance_info "traits" (which an allocation sets from its own
// traits, or a client from a flavor). Deploy templates match these, not
// every trait of the node (ironic/conductor/steps.py,
// _get_deployment_templates).
func InstanceTraits(n wire.Node) []string {
	raw, _ := n.InstanceInfo["traits"].([]any)
	out := make([]string, 0, len(raw))
	for _, t := range raw {
		if s, ok := t.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// TemplateSteps returns the deploy steps of the templates whose name is one
// of traits, template by template in the order of templates, each step
// as the template has it (interface, step, args, priority): the user's
// deploy steps that a deploy runs besides its driver's, ordered by the
// runner by priority as every deploy step is. Ironic gathers them the same
// way (ironic/conductor/steps.py, _get_steps_from_deployment_templates);
// pass InstanceTraits(node) as traits.
func TemplateSteps(traits []string, templates []wire.DeployTemplate) []wire.Step {
	var out []wire.Step
	for _, t := range templates {
		if !slices.Contains(traits, t.Name) {
			continue
		}
		out = append(out, t.Steps...)
	}
	return out
}
