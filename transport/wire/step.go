package wire

// Step is one clean or deploy step as Ironic names it: a method of one of
// the node's driver interfaces ("deploy"."erase_devices"), the arguments it
// runs with and its priority. A manual clean runs the steps a user listed,
// in the order given; automated cleaning and deployment run the node's
// steps of priority above zero, highest first. internal/steps says which
// steps a node has.
type Step struct {
	Interface string         `json:"interface"`
	Step      string         `json:"step"`
	Args      map[string]any `json:"args"`
	Priority  int            `json:"priority"`
}

// ID is the step's name as Ironic spells it in messages and settings:
// "deploy.erase_devices".
func (s Step) ID() string { return s.Interface + "." + s.Step }

// StepsParams are the parameters of a clean (OpClean) or deploy (OpDeploy,
// OpRebuild) task that names its steps: what the user asked for, already
// validated against the node by the API.
type StepsParams struct {
	// CleanSteps are a manual clean's steps, in the order they run.
	CleanSteps []Step `json:"clean_steps,omitempty"`
	// DeploySteps are the user's deploy steps (1.69), run with the
	// deploy's own steps by priority.
	DeploySteps []Step `json:"deploy_steps,omitempty"`
	// DisableRamdisk (1.70) asks for a manual clean without booting the
	// agent; every step is then one that runs without it.
	DisableRamdisk bool `json:"disable_ramdisk,omitempty"`
	// ConfigDrive is a deploy's or rebuild's config drive, checked by
	// the API; nil when the request gave none.
	ConfigDrive *ConfigDrive `json:"configdrive,omitempty"`
}

// ConfigDrive is a config drive in one of the forms Ironic's provision
// API takes: Image set (a gzipped, base64 ISO 9660 image, or an http(s)
// URL to one), or the parts of a dict (1.56; vendor_data 1.59) that the
// conductor builds into an ISO labelled config-2 (internal/configdrive).
type ConfigDrive struct {
	Image       string         `json:"image,omitempty"`
	MetaData    map[string]any `json:"meta_data,omitempty"`
	NetworkData map[string]any `json:"network_data,omitempty"`
	// UserData is a string, an object or a list (null: none).
	UserData   any            `json:"user_data,omitempty"`
	VendorData map[string]any `json:"vendor_data,omitempty"`
}
