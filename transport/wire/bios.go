package wire

import "time"

// BiosSetting is one BIOS setting of a node as its bios interface reports
// it: Ironic's BIOSSetting object, the value always a string. The registry
// fields (API 1.74) are nil where the interface says nothing.
type BiosSetting struct {
	Name            string    `json:"name"`
	Value           *string   `json:"value"`
	AttributeType   *string   `json:"attribute_type,omitempty"`
	AllowableValues []string  `json:"allowable_values,omitempty"`
	LowerBound      *int      `json:"lower_bound,omitempty"`
	UpperBound      *int      `json:"upper_bound,omitempty"`
	MinLength       *int      `json:"min_length,omitempty"`
	MaxLength       *int      `json:"max_length,omitempty"`
	ReadOnly        *bool     `json:"read_only,omitempty"`
	ResetRequired   *bool     `json:"reset_required,omitempty"`
	Unique          *bool     `json:"unique,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at,omitzero"`
}

// FirmwareComponent is one firmware component of a node (the BIOS, the
// BMC) as its firmware interface reports it: Ironic's FirmwareComponent.
// InitialVersion is the version first seen; CurrentVersion the one now.
type FirmwareComponent struct {
	Component          string    `json:"component"`
	InitialVersion     string    `json:"initial_version,omitempty"`
	CurrentVersion     string    `json:"current_version,omitempty"`
	LastVersionFlashed string    `json:"last_version_flashed,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at,omitzero"`
}
