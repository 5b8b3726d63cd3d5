package api

import (
	"encoding/json"
	"fmt"

	"github.com/ironfleet/ironfleet/internal/steps"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Microversions of the provision body's step parameters
// (ironic/api/controllers/v1/versions.py).
const (
	deployStepsVersion    = 69 // deploy_steps
	disableRamdiskVersion = 70 // disable_ramdisk
)

// stepParams reads a provision request's clean_steps, deploy_steps and
// disable_ramdisk as Ironic's API does (node.py provision and
// _do_provision_action, utils.py check_allow_deploy_steps and
// check_allow_disable_ramdisk), and checks every step against node n
// (internal/steps) before anything is published: an unknown step or one
// the node's interfaces do not have is a 400 naming it. (Ironic finds
// unknown steps in its conductor and fails the clean; ironfleet knows a
// node's steps without booting it, so it refuses them up front.) It
// returns the task's parameters: body without target, with the steps as
// validated and cd, the config drive as configDriveOf read it.
func stepParams(n wire.Node, op wire.Operation, v Version, body map[string]json.RawMessage, cd *wire.ConfigDrive) (json.RawMessage, error) {
	var p wire.StepsParams
	if raw, ok := body["disable_ramdisk"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &p.DisableRamdisk); err != nil {
			return nil, badRequest("Invalid disable_ramdisk %s: want true or false.", raw)
		}
		if op != wire.OpClean {
			return nil, badRequest("disable_ramdisk is supported only with manual cleaning or servicing")
		}
		if !v.AtLeast(disableRamdiskVersion) {
			return nil, &notAcceptableError{msg: "disable_ramdisk is not acceptable in this API version"}
		}
	}
	cleanSteps, err := stepList(body, "clean_steps")
	if err != nil {
		return nil, err
	}
	if len(cleanSteps) > 0 && op != wire.OpClean {
		return nil, badRequest("\"clean_steps\" is only valid when setting target provision state to clean")
	}
	deploySteps, err := stepList(body, "deploy_steps")
	if err != nil {
		return nil, err
	}
	if len(deploySteps) > 0 {
		if !v.AtLeast(deployStepsVersion) {
			return nil, &notAcceptableError{msg: fmt.Sprintf("Request not acceptable. The minimal required API version should be 1.%d", deployStepsVersion)}
		}
		// Ironic accepts deploy steps with active and rebuild; ironfleet
		// also with their 1.73 alias deploy, the same operation.
		if op != wire.OpDeploy && op != wire.OpRebuild {
			return nil, badRequest("\"deploy_steps\" is only valid when setting target provision state to active or rebuild")
		}
		user, err := steps.Decode(steps.Deploy, deploySteps)
		if err == nil {
			p.DeploySteps, err = steps.Validate(n, steps.Deploy, user, false)
		}
		if err != nil {
			return nil, err
		}
	}
	if op == wire.OpClean {
		if len(cleanSteps) == 0 {
			return nil, badRequest("\"clean_steps\" is required when setting target provision state to clean")
		}
		user, err := steps.Decode(steps.Clean, cleanSteps)
		if err == nil {
			p.CleanSteps, err = steps.Validate(n, steps.Clean, user, p.DisableRamdisk)
		}
		if err != nil {
			return nil, err
		}
	}
	out := map[string]any{}
	for k, raw := range body {
		switch k {
		case "target", "clean_steps", "deploy_steps", "disable_ramdisk", "configdrive":
		default:
			out[k] = raw
		}
	}
	if p.CleanSteps != nil {
		out["clean_steps"] = p.CleanSteps
	}
	if p.DeploySteps != nil {
		out["deploy_steps"] = p.DeploySteps
	}
	if p.DisableRamdisk {
		out["disable_ramdisk"] = true
	}
	if cd != nil {
		out["configdrive"] = cd
	}
	if len(out) == 0 {
		return nil, nil
	}
	return json.Marshal(out)
}

// stepList returns body's steps field, nil when absent, null or an empty
// list (Ironic treats those alike: no steps).
func stepList(body map[string]json.RawMessage, key string) (json.RawMessage, error) {
	raw, ok := body[key]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, badRequest("Invalid %s: %s is not of type 'array'", key, raw)
	}
	if len(items) == 0 {
		return nil, nil
	}
	return raw, nil
}

// stepsOf renders the steps of the flow under way as Ironic does: the
// running step as the node's clean_step or deploy_step ({} when none), the
// flow's steps and index in driver_internal_info (clean_steps,
// clean_step_index; deploy_steps, deploy_step_index).
func stepsOf(n wire.Node, internal map[string]any) (clean, deploy map[string]any) {
	clean, deploy = map[string]any{}, map[string]any{}
	var kind string
	var current *map[string]any
	switch n.ProvisionState {
	case wire.StateCleaning, wire.StateCleanWait:
		kind, current = "clean", &clean
	case wire.StateDeploying, wire.StateWaitCallback:
		kind, current = "deploy", &deploy
	default:
		return clean, deploy
	}
	if len(n.Steps) == 0 {
		return clean, deploy
	}
	internal[kind+"_steps"] = n.Steps
	if n.StepIndex < len(n.Steps) {
		internal[kind+"_step_index"] = n.StepIndex
		s := n.Steps[n.StepIndex]
		args := s.Args
		if args == nil {
			args = map[string]any{}
		}
		*current = map[string]any{"interface": s.Interface, "step": s.Step, "args": args, "priority": s.Priority}
	}
	return clean, deploy
}
