package rootdevice

import "fmt"

// ForDeploy reads the hints a deploy of node honours, as Ironic's
// get_root_device_for_deploy (ironic/drivers/modules/deploy_utils.py):
// instance_info.root_device when given, else properties.root_device. An
// invalid one is refused in Ironic's words, naming where the hints come
// from; the returned error wraps the *Error that names the hint.
func ForDeploy(node string, instanceInfo, properties map[string]any) (Hints, error) {
	source, raw := "instance_info", instanceInfo["root_device"]
	if empty(raw) {
		source, raw = "properties", properties["root_device"]
	}
	h, err := Parse(raw)
	if err != nil {
		return Hints{}, fmt.Errorf("Failed to validate the root device hints %s (from the node's %s.root_device) for node %s: %w", //nolint:staticcheck // Ironic's words
			jsonOf(raw), source, node, err)
	}
	return h, nil
}
