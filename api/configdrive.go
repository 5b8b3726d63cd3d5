package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/ironfleet/ironfleet/internal/configdrive"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Microversions of the provision body's configdrive
// (ironic/api/controllers/v1/versions.py).
const (
	rebuildConfigDriveVersion = 35 // configdrive with rebuild
	buildConfigDriveVersion   = 56 // configdrive as a JSON object
	configDriveVendorVersion  = 59 // vendor_data in that object
)

// configDriveKeys are what a configdrive object may hold and the JSON
// types each may be (Ironic's _CONFIG_DRIVE_SCHEMA).
var configDriveKeys = map[string][]string{
	"meta_data":    {"object"},
	"network_data": {"object"},
	"user_data":    {"object", "array", "string", "null"},
	"vendor_data":  {"object"},
}

// configDriveOf reads a provision request's configdrive as Ironic's
// check_allow_configdrive does (ironic/api/controllers/v1/utils.py), and
// further: a string must be an http(s) URL (the agent downloads it) or a
// base64, optionally gzipped, ISO 9660 image that the agent can write, not
// merely base64 letters. It returns nil when there is none (absent, null,
// "" or {}, which Ironic takes as none too). Every refusal is a 400, as
// Ironic's (a dict before 1.56 included: Ironic answers 400 there, not 406).
func configDriveOf(op wire.Operation, v Version, raw json.RawMessage) (*wire.ConfigDrive, error) {
	raw = bytes.TrimSpace(raw)
	switch string(raw) {
	case "", "null", `""`, "{}":
		return nil, nil
	}
	allowed := "active"
	if v.AtLeast(rebuildConfigDriveVersion) {
		allowed = "active, rebuild"
	}
	if op != wire.OpDeploy && (op != wire.OpRebuild || !v.AtLeast(rebuildConfigDriveVersion)) {
		return nil, badRequest("Adding a config drive is only supported when setting provision state to %s", allowed)
	}
	switch raw[0] {
	case '{':
		return configDriveDict(v, raw)
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest("Invalid configdrive format: %s", err)
		}
		return configDriveString(s)
	}
	return nil, badRequest("Invalid configdrive format: %s is not of type 'object', 'string', 'null'", raw)
}

func configDriveDict(v Version, raw json.RawMessage) (*wire.ConfigDrive, error) {
	var parts map[string]json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, badRequest("Invalid configdrive format: %s", err)
	}
	for k, val := range parts {
		types, ok := configDriveKeys[k]
		if !ok {
			return nil, badRequest("Invalid configdrive format: Additional properties are not allowed ('%s' was unexpected)", k)
		}
		if t := jsonType(val); !slices.Contains(types, t) {
			return nil, badRequest("Invalid configdrive format: configdrive.%s: %s is not of type %s", k, val, quoteAll(types))
		}
	}
	if !v.AtLeast(buildConfigDriveVersion) {
		return nil, badRequest("Providing a JSON object for configdrive is only supported starting with API version 1.%d", buildConfigDriveVersion)
	}
	if _, ok := parts["vendor_data"]; ok && !v.AtLeast(configDriveVendorVersion) {
		return nil, badRequest("Providing vendor_data in configdrive is only supported starting with API version 1.%d", configDriveVendorVersion)
	}
	var cd wire.ConfigDrive
	if err := json.Unmarshal(raw, &cd); err != nil {
		return nil, badRequest("Invalid configdrive format: %s", err)
	}
	return &cd, nil
}

func configDriveString(s string) (*wire.ConfigDrive, error) {
	if configdrive.IsURL(s) {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, badRequest("Invalid configdrive format: %q is not an http:// or https:// URL, the only ones the agent downloads", s)
		}
		return &wire.ConfigDrive{Image: s}, nil
	}
	if _, err := configdrive.Decode(s); err != nil {
		return nil, badRequest("Invalid configdrive format: %s", strings.TrimPrefix(err.Error(), configdrive.ErrInvalid.Error()+": "))
	}
	return &wire.ConfigDrive{Image: s}, nil
}

// jsonType is the JSON Schema type name of a JSON value.
func jsonType(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "null"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func quoteAll(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("'%s'", s)
	}
	return strings.Join(q, ", ")
}
