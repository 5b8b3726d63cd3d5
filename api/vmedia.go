package api

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// vmediaDevices are the devices virtual media can attach as (Ironic's
// boot_devices.VMEDIA_DEVICES).
var vmediaDevices = []string{"disk", "cdrom", "floppy"}

// vmediaSchemes are the image URL schemes Ironic accepts
// (image_publisher.VMEDIA_SUPPORTED_URL_SCHEMES).
var vmediaSchemes = []string{"http", "https", "nfs", "cifs", "smb"}

// noVirtualMedia is Ironic's UnsupportedDriverExtension for a node whose
// management interface has no virtual media, which is every ironfleet
// hardware type (ipmi, sim and fake-hardware alike; Ironic's own
// fake-hardware has none either: drivers/base.py ManagementInterface).
func noVirtualMedia(n wire.Node, extension string) error {
	return badRequest("Driver %s does not support %s (disabled or not implemented).", n.Driver, extension)
}

// attachVmedia answers POST /v1/nodes/{node}/vmedia (1.89). The body is
// checked as Ironic's VMEDIA_ATTACH_VALIDATOR and URL scheme check do
// (ironic/api/controllers/v1/node.py NodeVmediaController), then the
// node's driver refuses. Ironic answers 204 and fails in the background
// (the node's last_error); ironfleet refuses at once, with the same words.
func (s *Server) attachVmedia(c *gin.Context) {
	body, err := decodeObject(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := checkVmediaAttach(body); err != nil {
		s.fail(c, err)
		return
	}
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.fail(c, noVirtualMedia(n, "attach_virtual_media"))
}

func checkVmediaAttach(body map[string]json.RawMessage) error {
	str := func(k string) (string, bool, error) {
		raw, ok := body[k]
		if !ok {
			return "", false, nil
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", true, badRequest("Schema error for vmedia: %s is not of type 'string'", raw)
		}
		return v, true, nil
	}
	for k := range body {
		if !slices.Contains([]string{"device_type", "image_url", "image_download_source"}, k) {
			return badRequest("Schema error for vmedia: Additional properties are not allowed ('%s' was unexpected)", k)
		}
	}
	for _, k := range []string{"device_type", "image_url"} {
		if _, ok := body[k]; !ok {
			return badRequest("Schema error for vmedia: '%s' is a required property", k)
		}
	}
	device, _, err := str("device_type")
	if err != nil {
		return err
	}
	if !slices.Contains(vmediaDevices, device) {
		return badRequest("Schema error for vmedia: '%s' is not one of ['%s']", device, strings.Join(vmediaDevices, "', '"))
	}
	source, ok, err := str("image_download_source")
	if err != nil {
		return err
	}
	if sources := []string{"http", "local", "swift"}; ok && !slices.Contains(sources, source) {
		return badRequest("Schema error for vmedia: '%s' is not one of ['%s']", source, strings.Join(sources, "', '"))
	}
	image, _, err := str("image_url")
	if err != nil {
		return err
	}
	u, err := url.Parse(image)
	scheme := ""
	if err == nil {
		scheme = u.Scheme
	}
	if !slices.Contains(vmediaSchemes, scheme) {
		return badRequest("Unsupported or missing URL scheme: %s", scheme)
	}
	return nil
}

// detachVmedia answers DELETE /v1/nodes/{node}/vmedia (1.89): the
// device_types asked for must be virtual media devices, then the node's
// driver refuses, as attachVmedia.
func (s *Server) detachVmedia(c *gin.Context) {
	var invalid []string
	for _, d := range splitFields(c.Query("device_types")) {
		if !slices.Contains(vmediaDevices, d) {
			invalid = append(invalid, d)
		}
	}
	if len(invalid) > 0 {
		s.fail(c, badRequest("Invalid device type(s) %s (valid are %s)", strings.Join(invalid, ", "), strings.Join(vmediaDevices, ", ")))
		return
	}
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.fail(c, noVirtualMedia(n, "detach_virtual_media"))
}

// getVmedia answers GET /v1/nodes/{node}/vmedia (1.93): refused, as
// attachVmedia.
func (s *Server) getVmedia(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.fail(c, noVirtualMedia(n, "get_virtual_media"))
}
