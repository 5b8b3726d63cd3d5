package conductor

import (
	"maps"

	"github.com/ironfleet/ironfleet/internal/configdrive"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// configDriveKey is where a node keeps its instance's config drive
// between the deploy's start and the image write, as Ironic's
// _store_configdrive does: instance_info.configdrive, gzipped base64 or a
// URL (the API masks it).
const configDriveKey = "configdrive"

// configDrive is the config drive a deploy or rebuild task gives, as it is
// stored: a dict is built into its ISO now, as Ironic's start_deploy does
// (ironic/conductor/utils.py build_configdrive: meta_data's uuid and name
// default to the node's, network_data to the node's network_data), so
// that what the agent gets is always an image or a URL. "" when the task
// gives none.
func (w *job) configDrive() (string, error) {
	p, err := w.stepsParams()
	if err != nil || p.ConfigDrive == nil {
		return "", err
	}
	cd := p.ConfigDrive
	if cd.Image != "" {
		return cd.Image, nil
	}
	meta := maps.Clone(cd.MetaData)
	if meta == nil {
		meta = map[string]any{}
	}
	if _, ok := meta["uuid"]; !ok {
		meta["uuid"] = w.node.UUID
	}
	if _, ok := meta["name"]; !ok && w.node.Name != "" {
		meta["name"] = w.node.Name
	}
	network := cd.NetworkData
	if network == nil {
		network = w.node.NetworkData
	}
	iso, err := configdrive.Build(configdrive.Contents{MetaData: meta, NetworkData: network, UserData: cd.UserData, VendorData: cd.VendorData}, "")
	if err != nil {
		return "", wire.Errorf(wire.CodeInvalidInput, "building the config drive of node %s: %w", w.node.UUID, err)
	}
	enc, err := configdrive.Encode(iso)
	if err != nil {
		return "", wire.Errorf(wire.CodeInternal, "encoding the config drive of node %s: %w", w.node.UUID, err)
	}
	return enc, nil
}

// storeConfigDrive records cd in n's instance_info (nothing when "": a
// rebuild without one keeps the instance's, as Ironic's does).
func storeConfigDrive(n *wire.Node, cd string) {
	if cd == "" {
		return
	}
	n.InstanceInfo = maps.Clone(n.InstanceInfo)
	if n.InstanceInfo == nil {
		n.InstanceInfo = map[string]any{}
	}
	n.InstanceInfo[configDriveKey] = cd
}

// storedConfigDrive is the config drive the agent writes with the image.
func storedConfigDrive(n wire.Node) string {
	s, _ := n.InstanceInfo[configDriveKey].(string)
	return s
}

// forgetConfigDrive drops the instance's config drive on tear down: the
// next instance is not given this one's identity.
func forgetConfigDrive(n *wire.Node) {
	if _, ok := n.InstanceInfo[configDriveKey]; ok {
		n.InstanceInfo = maps.Clone(n.InstanceInfo)
		delete(n.InstanceInfo, configDriveKey)
	}
}
