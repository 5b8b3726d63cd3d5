package pxe_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ironfleet/ironfleet/conductor/pxe"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// A deploy starts: the node's iPXE script is written under the TFTP root,
// where boot.ipxe chains to it by MAC.
func ExampleConfigs_Prepare() {
	root, _ := os.MkdirTemp("", "tftproot")
	defer os.RemoveAll(root)
	configs, err := pxe.NewConfigs(pxe.Config{Root: root})
	if err != nil {
		panic(err)
	}
	defer configs.Close()

	node := wire.Node{UUID: "3f2a6c1e-0d7b-4a51-9a0e-6f1b2c3d4e5f"}
	err = configs.Prepare(context.Background(), node, []string{"52:54:00:12:34:56"}, wire.BootParams{
		Purpose: wire.BootForDeploy,
		Kernel:  "agent/vmlinuz",
		Ramdisk: "agent/initramfs.gz",
		APIURL:  "http://10.0.2.2:6385",
	})
	if err != nil {
		panic(err)
	}
	script, _ := os.ReadFile(filepath.Join(root, "nodes", "52-54-00-12-34-56.ipxe"))
	fmt.Print(string(script))
	// Output:
	// #!ipxe
	// # Written by the ironfleet conductor for the deploy of node 3f2a6c1e-0d7b-4a51-9a0e-6f1b2c3d4e5f
	// # (NIC 52:54:00:12:34:56); removed when the deploy ends. Boot mode uefi:
	// # the same script serves iPXE's BIOS and EFI builds (initrd= names the
	// # ramdisk for the EFI stub).
	// kernel --name kernel /agent/vmlinuz initrd=ramdisk ironfleet.api_url=http://10.0.2.2:6385 ironfleet.node=3f2a6c1e-0d7b-4a51-9a0e-6f1b2c3d4e5f ironfleet.purpose=deploy BOOTIF=01-52-54-00-12-34-56
	// initrd --name ramdisk /agent/initramfs.gz
	// boot
}
