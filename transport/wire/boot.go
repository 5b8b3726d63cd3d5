package wire

// BootPurpose says why a node network-boots the agent ramdisk.
type BootPurpose string

// Boot purposes.
const (
	BootForDeploy  BootPurpose = "deploy"
	BootForClean   BootPurpose = "clean"
	BootForInspect BootPurpose = "inspect"
)

// Kernel command-line keys the conductor's network boot config passes to the
// on-node agent (the agent reads them from /proc/cmdline). They are a contract
// between the conductor's PXE driver and the agent, hence here.
const (
	KernelArgAPIURL  = "ironfleet.api_url" // the API base URL the agent looks itself up at
	KernelArgNode    = "ironfleet.node"    // the node's UUID, a hint: lookup is by MAC
	KernelArgPurpose = "ironfleet.purpose" // a BootPurpose
	// KernelArgBootIF is the PXELINUX/iPXE convention for the MAC the machine
	// booted from: "01-aa-bb-cc-dd-ee-ff".
	KernelArgBootIF = "BOOTIF"
)

// BootParams is what a node's network boot config is rendered from: which
// kernel and ramdisk to boot and what the agent in them needs to know.
type BootParams struct {
	Purpose BootPurpose `json:"purpose"`
	// Kernel and Ramdisk are paths relative to the TFTP root
	// ("agent/vmlinuz") or, for iPXE only, http(s):// URLs.
	Kernel  string `json:"kernel"`
	Ramdisk string `json:"ramdisk"`
	// APIURL is the API base URL the agent calls (KernelArgAPIURL).
	APIURL string `json:"api_url"`
	// ExtraArgs are appended to the kernel command line as they are
	// (e.g. "console=ttyS0"); they must not contain line breaks.
	ExtraArgs string `json:"extra_args,omitempty"`
}
