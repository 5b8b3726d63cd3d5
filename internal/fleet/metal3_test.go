package fleet_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/inventory"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/noauth"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/drivers"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/nodes"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/utils"
	"github.com/gophercloud/gophercloud/v2/pagination"

	"github.com/ironfleet/ironfleet/internal/fleet"
)

// TestMetal3BaremetalOperatorReplay replays, through gophercloud v2 as
// Metal3 does, the HTTP calls metal3-io/baremetal-operator makes for the
// life of a BareMetalHost, in its order and with its bodies. Every call
// cites where it comes from: "bmo <file>:<line>" is
// pkg/provisioner/ironic/<file> at baremetal-operator commit 02aa5059e348
// (Aug 2026, the release that requires API 1.89); "bmo@c19f778ac^" is the
// commit before ironic-inspector support was removed, for the calls of the
// releases still deployed that read GET /v1/drivers/{driver}.
//
// Metal3 drives real BMCs (ipmi://, redfish://). The fleet has simulated
// machines with simulated agents (the `sim` hardware type) where the
// hardware's behaviour is the point — inspection's inventory, software RAID,
// cleaning and deploying through the agent, a host that never calls back —
// and `fake-hardware` where it is not (a BIOS clean step, deploy steps, soft
// power off), as Ironic's own client tests enroll fake-hardware nodes.
// An ipmi host is registered exactly as Metal3 registers it, and deleted
// again while enrolled: the dev fleet has no IPMI BMC to manage it with.
//
// Each host is a subtest, so that a step Ironic allows and ironfleet does
// not yet stops only that host's life.
func TestMetal3BaremetalOperatorReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("the whole fleet; skipped in -short")
	}
	// Two simulated machines that the test registers itself, as Metal3
	// would: sim-0001 (52:54:00:00:00:00) and sim-0002 (52:54:00:00:00:01).
	dev := startDev(t, fleet.DevConfig{Nodes: 2, NoEnroll: true})
	b := newBMO(t, dev.APIURL())
	image := fetchImage(t, dev.ImageURL())

	t.Run("ipmi host registers with ipxe boot and agent inspection", func(t *testing.T) {
		// bmo@c19f778ac^ inspecthardware.go:20 (getInspectInterface): the
		// driver's enabled inspect interfaces decide what node create sends;
		// without "agent" it sends "inspector", which Ironic refuses.
		d, err := drivers.GetDriverDetails(t.Context(), b.c, "ipmi").Extract()
		if err != nil {
			t.Fatalf("GET /v1/drivers/ipmi: %v", err)
		}
		if !slices.Contains(d.EnabledInspectInterfaces, "agent") {
			t.Errorf("ipmi enabled_inspect_interfaces %v: want agent among them", d.EnabledInspectInterfaces)
		}
		host := b.register(t, metal3Host{
			name: "ipmi-0", driver: "ipmi", boot: "ipxe", raid: "no-raid",
			driverInfo: map[string]any{ // bmo hardwareutils/bmc/ipmi.go DriverInfo
				"ipmi_port": "6230", "ipmi_username": "admin", "ipmi_password": "password",
				"ipmi_address": "192.0.2.10", "ipmi_priv_level": "ADMINISTRATOR",
				"deploy_kernel":  "http://192.0.2.1/images/ironic-python-agent.kernel",
				"deploy_ramdisk": "http://192.0.2.1/images/ironic-python-agent.initramfs",
			},
			mac: "52:54:00:aa:00:01",
		})
		for _, c := range []struct{ field, got, want string }{
			{"boot_interface", host.BootInterface, "ipxe"},
			{"inspect_interface", host.InspectInterface, "agent"},
			{"raid_interface", host.RAIDInterface, "no-raid"},
			{"provision_state", host.ProvisionState, "enroll"},
		} {
			if c.got != c.want {
				t.Errorf("created node %s = %q, want %q", c.field, c.got, c.want)
			}
		}
		// bmo ironic.go:1516-1582 (realDelete): an enrolled node is deleted
		// as it is.
		b.delete(t, host.UUID)
	})

	t.Run("sim host: register, inspect, software RAID clean, provide, deploy, soft power off, deprovision from active, delete", func(t *testing.T) {
		host := b.register(t, metal3Host{
			name: "worker-0", driver: "sim", boot: "ipxe", raid: "no-raid",
			driverInfo: map[string]any{"sim_machine": "sim-0001"},
			mac:        "52:54:00:00:00:00",
			// bmo register.go:190-207: without a preprovisioning image
			// builder, the host's preprovisioning network data goes to the
			// node's network_data.
			networkData: map[string]any{"links": []any{map[string]any{"id": "eth0", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:00"}}, "networks": []any{}, "services": []any{}},
		})
		// bmo ironic.go:236-245 (findExistingHost after the operator lost
		// the node's ID): the port found by MAC names its node, through
		// fields=node_uuid,uuid,address.
		found := b.portsByMAC(t, "52:54:00:00:00:00")
		if len(found) != 1 || found[0].NodeUUID != host.UUID {
			t.Fatalf("GET /v1/ports?address=…&fields=node_uuid,uuid,address: %+v, want one port of node %s", found, host.UUID)
		}
		b.manage(t, host.UUID)
		b.configure(t, host.UUID, true)

		// bmo inspecthardware.go:139-145: a node never inspected has no
		// inventory (404), so Metal3 starts inspection …
		if _, err := nodes.GetInventory(t.Context(), b.c, host.UUID).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Fatalf("GET /v1/nodes/{n}/inventory before inspection: %v, want 404", err)
		}
		// … inspecthardware.go:28-66 (startInspection): properties and the
		// inspect interface it wants, then inspect.
		b.update(t, host.UUID, nodes.UpdateOpts{
			nodes.UpdateOperation{Op: nodes.AddOp, Path: "/properties/cpu_arch", Value: "x86_64"},
		})
		b.provision(t, host.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetInspect})
		b.wait(t, host.UUID, nodes.Manageable)
		// … inspecthardware.go:139-157: and reads the inventory the agent
		// sent; finding none it would inspect again, forever.
		inv, err := nodes.GetInventory(t.Context(), b.c, host.UUID).Extract()
		if err != nil {
			t.Fatalf("GET /v1/nodes/{n}/inventory after inspection: %v", err)
		}
		checkInventory(t, inv, "52:54:00:00:00:00")

		// bmo ironic.go:1092-1102 (Prepare in manageable) for a host whose
		// spec asks for software RAID, Metal3's RAID on an ipmi BMC:
		// raid.go:286-313 (CheckRAIDInterface) moves the node to the agent's
		// RAID interface. ironfleet's agent builds no software RAID, so its
		// ipmi and sim types do not offer raid "agent": the PATCH is refused
		// naming the interface and the choices (api/README.md), rather than
		// accepted and the RAID never built. RAID steps run on the
		// fake-hardware host below.
		if _, err := nodes.Update(t.Context(), b.c, host.UUID, nodes.UpdateOpts{
			nodes.UpdateOperation{Op: nodes.AddOp, Path: "/raid_interface", Value: "agent"},
		}).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) || !strings.Contains(err.Error(), "Valid interfaces for hardware type sim are no-raid") {
			t.Fatalf("PATCH raid_interface agent: %v, want 400 naming the choices", err)
		}
		// ironic.go:1038-1048 (manual cleaning, which BuildRAIDCleanSteps'
		// list ends with): the metadata-only erase, run by the agent.
		b.provision(t, host.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetClean, CleanSteps: []nodes.CleanStep{
			{Interface: nodes.InterfaceDeploy, Step: "erase_devices_metadata"},
		}})
		if n := b.wait(t, host.UUID, nodes.Manageable); n.LastError != "" {
			t.Errorf("last_error after the manual clean: %q, want none", n.LastError)
		}

		// ironic.go:1261-1263 (Provision in manageable): provide, cleaning
		// through the agent.
		b.provision(t, host.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetProvide})
		b.wait(t, host.UUID, nodes.Available)

		b.deploy(t, host.UUID, image, nil)
		b.wait(t, host.UUID, nodes.Active)
		b.softPowerOff(t, host.UUID)
		b.deprovision(t, host.UUID, true)
		b.wait(t, host.UUID, nodes.Available)
		b.delete(t, host.UUID)
	})

	t.Run("sim host with a wrong boot MAC: deprovision from wait call-back", func(t *testing.T) {
		// A BareMetalHost whose bootMACAddress is not the machine's: the
		// machine PXE-boots, finds no boot config for its own MAC and never
		// calls back, so the node stays in wait call-back until the user
		// deletes the host, and Metal3 deprovisions from there.
		host := b.register(t, metal3Host{
			name: "worker-1", driver: "sim", boot: "ipxe", raid: "no-raid",
			driverInfo: map[string]any{"sim_machine": "sim-0002"},
			mac:        "52:54:00:ff:00:01",
		})
		b.manage(t, host.UUID)
		b.configure(t, host.UUID, false) // automatedCleaningMode: disabled
		b.provision(t, host.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetProvide})
		b.wait(t, host.UUID, nodes.Available)
		b.deploy(t, host.UUID, image, nil)
		b.wait(t, host.UUID, nodes.DeployWait)
		// bmo ironic.go:1458-1474 (Deprovision in active, deploy failed or
		// wait call-back): deleted. Ironic allows it from wait call-back
		// (states.py: DEPLOYWAIT → DELETING on "deleted").
		b.deprovision(t, host.UUID, false)
		b.wait(t, host.UUID, nodes.Available)
		b.delete(t, host.UUID)
	})

	t.Run("fake-hardware host: manual clean with a BIOS step, deploy steps, soft power off", func(t *testing.T) {
		// A BMC with BIOS settings (redfish, idrac) gets a BIOS interface;
		// fake-hardware's "fake" one has Ironic's bios.apply_configuration
		// clean step without hardware (drivers/modules/fake.py FakeBIOS).
		// Its fake RAID has no clean steps in Ironic (FakeRAID's methods are
		// not decorated as steps), so RAID is the sim host's, above.
		host := b.register(t, metal3Host{
			name: "worker-2", driver: "fake-hardware", boot: "fake", raid: "fake", bios: "fake",
			mac: "52:54:00:aa:00:02",
		})
		b.manage(t, host.UUID)
		b.configure(t, host.UUID, true)

		// bmo ironic.go:726-738 (GetFirmwareSettings): the current BIOS
		// settings, with their schema (1.74).
		if _, err := nodes.ListBIOSSettings(t.Context(), b.c, host.UUID, nodes.ListBIOSSettingsOpts{Detail: true}).Extract(); err != nil {
			t.Fatalf("GET /v1/nodes/{n}/bios?detail=True: %v", err)
		}
		// bmo ironic.go:964-985 (buildManualCleaningSteps: the settings that
		// differ), started at ironic.go:1038-1048.
		b.provision(t, host.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetClean, CleanSteps: []nodes.CleanStep{
			{Interface: nodes.InterfaceBIOS, Step: "apply_configuration", Args: map[string]any{
				"settings": []map[string]any{{"name": "ProcTurboMode", "value": "Disabled"}},
			}},
		}})
		n := b.wait(t, host.UUID, nodes.Manageable)
		if n.LastError != "" {
			t.Errorf("last_error after manual clean: %q, want none", n.LastError)
		}
		// bmo ironic.go:1424-1433 (Deprovision in manageable) and
		// ironic.go:1261-1263 (Provision in manageable): provide.
		b.provision(t, host.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetProvide})
		b.wait(t, host.UUID, nodes.Available)

		// bmo ironic.go:1187-1198 (getCustomDeploySteps): user deploy
		// steps at priority 80. Metal3's custom deploy names a method of
		// deploy_interface custom-agent, which needs an agent; the core
		// deploy.deploy cannot be overridden (Ironic refuses it too:
		// "is a core step and cannot be overridden by user steps"), so the
		// step here is one fake-hardware has: a BIOS setting, applied
		// during the deploy.
		b.deploy(t, host.UUID, image, []nodes.DeployStep{
			{Interface: nodes.InterfaceBIOS, Step: "apply_configuration", Priority: 80, Args: map[string]any{
				"settings": []map[string]any{{"name": "ProcVirtualization", "value": "Disabled"}},
			}},
		})
		b.wait(t, host.UUID, nodes.Active)
		// Read as GetFirmwareSettings reads them (the list: gophercloud's
		// GetBIOSSetting expects a "Setting" key Ironic does not send).
		settings, err := nodes.ListBIOSSettings(t.Context(), b.c, host.UUID, nil).Extract()
		if i := slices.IndexFunc(settings, func(s nodes.BIOSSetting) bool { return s.Name == "ProcVirtualization" }); err != nil || i < 0 || settings[i].Value != "Disabled" {
			t.Fatalf("BIOS settings after the deploy step: %+v, %v; want ProcVirtualization Disabled", settings, err)
		}
		b.softPowerOff(t, host.UUID)
		b.deprovision(t, host.UUID, true)
		b.wait(t, host.UUID, nodes.Available)
		b.delete(t, host.UUID)
	})
}

// bmo is Metal3's Ironic client: gophercloud's noauth baremetal client at
// the microversion baremetal-operator chooses.
type bmo struct {
	c *gophercloud.ServiceClient
}

// newBMO negotiates as baremetal-operator does: clients/client.go:84-107
// (IronicClient: noauth, baseline microversion), factory.go:213-223
// (initAvailableFeature) with clients/features.go:27-40 (1.89 or newer is
// required) and :69-87 (ChooseMicroversion), then factory.go:226-252
// (checkIronicConductor: GET /v1/drivers lists at least one driver).
func newBMO(t *testing.T, apiURL string) *bmo {
	t.Helper()
	c, err := noauth.NewBareMetalNoAuth(noauth.EndpointOpts{IronicEndpoint: apiURL + "/v1/"})
	if err != nil {
		t.Fatal(err)
	}
	c.Microversion = "1.89"
	mv, err := utils.GetSupportedMicroversions(t.Context(), c)
	if err != nil {
		t.Fatalf("version negotiation (GET /v1/): %v", err)
	}
	if mv.MaxMajor != 1 || mv.MaxMinor < 89 {
		t.Fatalf("API maximum %d.%d: baremetal-operator requires 1.89 or newer (clients/features.go:33)", mv.MaxMajor, mv.MaxMinor)
	}
	c.Microversion = chooseMicroversion(mv.MaxMinor)
	t.Logf("API maximum 1.%d: baremetal-operator uses %s", mv.MaxMinor, c.Microversion)

	n := 0
	err = drivers.ListDrivers(c, drivers.ListDriversOpts{Detail: false}).EachPage(t.Context(), func(_ context.Context, p pagination.Page) (bool, error) {
		ds, err := drivers.ExtractDrivers(p)
		n += len(ds)
		return true, err
	})
	if err != nil || n == 0 {
		t.Fatalf("GET /v1/drivers: %d drivers, %v; baremetal-operator waits for at least one", n, err)
	}
	return &bmo{c: c}
}

// chooseMicroversion is clients/features.go:69-87: the newest of the
// versions baremetal-operator knows that the API offers.
func chooseMicroversion(maxMinor int) string {
	for _, v := range []int{110, 109, 95, 93} {
		if maxMinor >= v {
			return fmt.Sprintf("1.%d", v)
		}
	}
	return "1.89"
}

// metal3Host is what a BareMetalHost's BMC and spec give node create.
type metal3Host struct {
	name, driver     string
	boot, raid, bios string
	driverInfo       map[string]any
	mac              string
	networkData      map[string]any
}

// register is baremetal-operator's Register for a new host (register.go:51-269).
func (b *bmo) register(t *testing.T, h metal3Host) *nodes.Node {
	t.Helper()
	ctx := t.Context()
	name := "metal3~" + h.name // ironic.go:1836 (ironicNodeName: namespace~name)
	// ironic.go:204-230 (findExistingHost): by name, then — the host's name
	// has no "~" — by the bare name too; neither exists yet.
	for _, id := range []string{name, h.name} {
		if _, err := nodes.Get(ctx, b.c, id).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Fatalf("GET /v1/nodes/%s before registering: %v, want 404", id, err)
		}
	}
	// ironic.go:232-262: then by the boot MAC, with fields.
	if found := b.portsByMAC(t, h.mac); len(found) != 0 {
		t.Fatalf("GET /v1/ports?address=%s: %+v before registering, want none", h.mac, found)
	}
	// register.go:280-301 (enrollNode). DisablePowerOff is a pointer to the
	// host's setting, so false is sent too, at whatever microversion was
	// chosen. Ironic refuses any non-null disable_power_off below 1.95 with
	// 406 (api/controllers/v1/node.py reject_fields_in_newer_versions,
	// utils.py VERSIONED_FIELDS): Metal3 registers hosts only against an API
	// that offers 1.95, where ChooseMicroversion picks 1.95 or newer.
	disablePowerOff := false
	opts := nodes.CreateOpts{
		Driver: h.driver, Name: name, DriverInfo: h.driverInfo,
		BIOSInterface: h.bios, BootInterface: h.boot, RAIDInterface: h.raid,
		InspectInterface: "agent", // register.go:22, :271-278 (defaultInspectInterface)
		DisablePowerOff:  &disablePowerOff,
		Properties: map[string]any{
			"capabilities": "boot_mode:uefi", // capabilities.go:11 (UEFI, the default boot mode)
			"cpu_arch":     "x86_64",
		},
	}
	n, err := nodes.Create(ctx, b.c, opts).Extract()
	if err != nil {
		t.Fatalf("POST /v1/nodes (register.go:301): %v", err)
	}
	t.Cleanup(func() { _ = nodes.Delete(context.WithoutCancel(ctx), b.c, n.UUID).ExtractErr() })
	if n.DisablePowerOff {
		t.Errorf("created node disable_power_off true, want false")
	}
	// register.go:314-357 (createPortsForNode): the node's ports, the MAC's
	// ports, then the port (ironic.go:269-301).
	if got := b.ports(t, ports.ListOpts{NodeUUID: n.UUID}); len(got) != 0 {
		t.Fatalf("GET /v1/ports?node_uuid=…: %+v on a new node, want none", got)
	}
	if got := b.portsByMAC(t, h.mac); len(got) != 0 {
		t.Fatalf("GET /v1/ports?address=%s: %+v, want none", h.mac, got)
	}
	pxe := true
	if _, err := ports.Create(ctx, b.c, ports.CreateOpts{NodeUUID: n.UUID, Address: h.mac, PXEEnabled: &pxe}).Extract(); err != nil {
		t.Fatalf("POST /v1/ports (ironic.go:288): %v", err)
	}
	if h.networkData != nil {
		// register.go:190-212: network_data, through tryUpdateNode
		// (ironic.go:486-506).
		n = b.update(t, n.UUID, nodes.UpdateOpts{
			nodes.UpdateOperation{Op: nodes.AddOp, Path: "/network_data", Value: h.networkData},
		})
	}
	return n
}

// manage is register.go:220-249: manage an enrolled node, then wait while
// it verifies.
func (b *bmo) manage(t *testing.T, id string) {
	t.Helper()
	b.provision(t, id, nodes.ProvisionStateOpts{Target: nodes.TargetManage})
	b.wait(t, id, nodes.Manageable)
}

// configure is register.go:303-333 (configureNode) once the node is
// manageable: the agent's kernel and ramdisk (ironic.go:437-484,
// setDeployImage), automated_clean from the host's automatedCleaningMode,
// and the boot mode capability.
func (b *bmo) configure(t *testing.T, id string, automatedClean bool) {
	t.Helper()
	b.update(t, id, nodes.UpdateOpts{
		nodes.UpdateOperation{Op: nodes.AddOp, Path: "/driver_info/deploy_kernel", Value: "http://192.0.2.1/images/ironic-python-agent.kernel"},
		nodes.UpdateOperation{Op: nodes.AddOp, Path: "/driver_info/deploy_ramdisk", Value: "http://192.0.2.1/images/ironic-python-agent.initramfs"},
		nodes.UpdateOperation{Op: nodes.AddOp, Path: "/automated_clean", Value: automatedClean},
	})
}

// deploy is Provision in available (ironic.go:1274-1296): instance_uuid
// and instance_info with the image's hash (ironic.go:698-723 and
// :596-647, setDirectDeployUpdateOptsForNode), validate
// (ironic.go:128-150, boot and deploy must pass), then active with the
// host's config drive as a dict (ironic.go:1133-1185) and its deploy steps.
func (b *bmo) deploy(t *testing.T, id string, img metal3Image, steps []nodes.DeployStep) {
	t.Helper()
	ctx := t.Context()
	n := b.update(t, id, nodes.UpdateOpts{
		nodes.UpdateOperation{Op: nodes.AddOp, Path: "/instance_uuid", Value: "5b4a5f4e-7d5e-4c1c-9a39-1c2d3e4f5a6b"},
		nodes.UpdateOperation{Op: nodes.AddOp, Path: "/instance_info/capabilities", Value: map[string]any{"boot_mode": "uefi"}},
		nodes.UpdateOperation{Op: nodes.AddOp, Path: "/instance_info/image_source", Value: img.url},
		nodes.UpdateOperation{Op: nodes.AddOp, Path: "/instance_info/image_disk_format", Value: "raw"},
		nodes.UpdateOperation{Op: nodes.AddOp, Path: "/instance_info/image_os_hash_algo", Value: "sha256"},
		nodes.UpdateOperation{Op: nodes.AddOp, Path: "/instance_info/image_os_hash_value", Value: img.sha256},
		nodes.UpdateOperation{Op: nodes.AddOp, Path: "/driver_info/force_persistent_boot_device", Value: "Default"},
	})
	for _, k := range []string{"image_os_hash_algo", "image_os_hash_value", "image_source"} {
		if n.InstanceInfo[k] == nil {
			t.Errorf("instance_info after PATCH lacks %s: %v", k, n.InstanceInfo)
		}
	}
	v, err := nodes.Validate(ctx, b.c, id).Extract()
	if err != nil {
		t.Fatalf("GET /v1/nodes/{n}/validate (ironic.go:132): %v", err)
	}
	if !v.Boot.Result || !v.Deploy.Result {
		t.Fatalf("validate: boot %+v, deploy %+v; baremetal-operator fails the host unless both pass", v.Boot, v.Deploy)
	}
	b.provision(t, id, nodes.ProvisionStateOpts{
		Target: nodes.TargetActive,
		ConfigDrive: nodes.ConfigDrive{
			UserData: "#cloud-config\nhostname: " + n.Name + "\n",
			NetworkData: map[string]any{
				"links":    []any{map[string]any{"id": "eth0", "type": "phy"}},
				"networks": []any{map[string]any{"id": "provisioning", "link": "eth0", "type": "ipv4_dhcp"}},
				"services": []any{},
			},
			MetaData: map[string]any{
				"uuid": "0b7e9e5a-2f0e-4b8e-a1c4-5c6d7e8f9a0b", "metal3-namespace": "metal3", "metal3-name": n.Name,
				"local-hostname": n.Name, "local_hostname": n.Name, "name": n.Name,
			},
		},
		DeploySteps: steps,
	})
}

// softPowerOff is PowerOff with the default soft reboot mode
// (ironic.go:1779-1824) through changePower (ironic.go:1640-1685): soft
// power off with a 180 s timeout (ironic.go:36, :1654-1656). Refused with
// 400, baremetal-operator falls back to a hard power off
// (ironic.go:1677-1681, :1821-1830); the test wants the soft one honoured,
// as Ironic's ipmitool and fake power interfaces do.
func (b *bmo) softPowerOff(t *testing.T, id string) {
	t.Helper()
	retryLocked(t, func() error {
		return nodes.ChangePowerState(t.Context(), b.c, id, nodes.PowerStateOpts{Target: nodes.SoftPowerOff, Timeout: 180}).ExtractErr()
	})
	waitFor(t, "power off after soft power off", func() bool {
		n, err := nodes.Get(t.Context(), b.c, id).Extract()
		return err == nil && n.PowerState == "power off" && n.TargetPowerState == ""
	})
}

// deprovision is Deprovision in active, deploy failed or wait call-back
// (ironic.go:1458-1474): automated_clean as the host wants it
// (ironic.go:1348-1370, syncAutomatedClean), then deleted.
func (b *bmo) deprovision(t *testing.T, id string, automatedClean bool) {
	t.Helper()
	n, err := nodes.Get(t.Context(), b.c, id).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if n.AutomatedClean == nil || *n.AutomatedClean != automatedClean {
		b.update(t, id, nodes.UpdateOpts{nodes.UpdateOperation{Op: nodes.AddOp, Path: "/automated_clean", Value: automatedClean}})
	}
	b.provision(t, id, nodes.ProvisionStateOpts{Target: nodes.TargetDeleted})
}

// delete is Delete of an available node (ironic.go:1485-1596): clear
// instance_uuid if teardown left one, then DELETE; the node is gone.
func (b *bmo) delete(t *testing.T, id string) {
	t.Helper()
	ctx := t.Context()
	n, err := nodes.Get(ctx, b.c, id).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if n.InstanceUUID != "" { // ironic.go:1524-1533
		b.update(t, id, nodes.UpdateOpts{nodes.UpdateOperation{Op: nodes.RemoveOp, Path: "/instance_uuid"}})
	}
	retryLocked(t, func() error { return nodes.Delete(ctx, b.c, id).ExtractErr() }) // ironic.go:1582
	if _, err := nodes.Get(ctx, b.c, id).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Fatalf("GET /v1/nodes/%s after delete: %v, want 404", id, err)
	}
}

// provision is tryChangeNodeProvisionState (ironic.go:508-542), which
// retries a 409 (busy) later.
func (b *bmo) provision(t *testing.T, id string, opts nodes.ProvisionStateOpts) {
	t.Helper()
	retryLocked(t, func() error { return nodes.ChangeProvisionState(t.Context(), b.c, id, opts).ExtractErr() })
}

// update is tryUpdateNode (ironic.go:486-506), which retries a 409 later.
func (b *bmo) update(t *testing.T, id string, ops nodes.UpdateOpts) *nodes.Node {
	t.Helper()
	var n *nodes.Node
	retryLocked(t, func() error {
		var err error
		n, err = nodes.Update(t.Context(), b.c, id, ops).Extract()
		return err
	})
	return n
}

// wait polls the node as baremetal-operator's reconciler does until it is
// in want; a failed state, or a stable state other than want, fails.
func (b *bmo) wait(t *testing.T, id string, want nodes.ProvisionState) *nodes.Node {
	t.Helper()
	var last *nodes.Node
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		n, err := nodes.Get(t.Context(), b.c, id).Extract()
		if err != nil {
			t.Fatal(err)
		}
		last = n
		switch nodes.ProvisionState(n.ProvisionState) {
		case want:
			return n
		case nodes.CleanFail, nodes.DeployFail, nodes.InspectFail, nodes.Error, nodes.AdoptFail, nodes.RescueFail:
			t.Fatalf("node %s %s, want %s; last_error %q", id, n.ProvisionState, want, n.LastError)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node %s not %s within 90s: provision_state %q target %q last_error %q",
		id, want, last.ProvisionState, last.TargetProvisionState, last.LastError)
	return nil
}

// portsByMAC is getPorts with a MAC (ironic.go:178-200): with fields, so
// each port carries only node_uuid, uuid and address.
func (b *bmo) portsByMAC(t *testing.T, mac string) []ports.Port {
	t.Helper()
	return b.ports(t, ports.ListOpts{Address: mac})
}

func (b *bmo) ports(t *testing.T, opts ports.ListOpts) []ports.Port {
	t.Helper()
	opts.Fields = []string{"node_uuid", "uuid", "address"}
	pages, err := ports.List(b.c, opts).AllPages(t.Context())
	if err != nil {
		t.Fatalf("GET /v1/ports: %v", err)
	}
	ps, err := ports.ExtractPorts(pages)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.UUID == "" || p.NodeUUID == "" || p.Address == "" {
			t.Fatalf("port %+v lacks a field baremetal-operator asked for (fields=node_uuid,uuid,address)", p)
		}
	}
	return ps
}

// checkInventory asserts what hardwaredetails.GetHardwareDetails reads
// from an inventory (hardwaredetails/hardwaredetails.go): CPUs, memory,
// disks and the NIC Metal3 boots from.
func checkInventory(t *testing.T, inv *nodes.InventoryData, mac string) {
	t.Helper()
	in := inv.Inventory
	if in.CPU.Count == 0 || in.Memory.PhysicalMb == 0 || len(in.Disks) == 0 {
		t.Errorf("inventory cpu %+v, memory %+v, %d disks: want each reported", in.CPU, in.Memory, len(in.Disks))
	}
	if !slices.ContainsFunc(in.Interfaces, func(i inventory.InterfaceType) bool { return i.MACAddress == mac }) {
		t.Errorf("inventory interfaces %+v: want one with MAC %s", in.Interfaces, mac)
	}
}

// metal3Image is the image a host deploys, with its checksum as Metal3's
// spec.image carries it.
type metal3Image struct{ url, sha256 string }

func fetchImage(t *testing.T, url string) metal3Image {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, res.Body); err != nil {
		t.Fatal(err)
	}
	return metal3Image{url: url, sha256: hex.EncodeToString(h.Sum(nil))}
}
