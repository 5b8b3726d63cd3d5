package steps

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// Decode reads a provision request's clean_steps or deploy_steps (the
// field named by flow) against Ironic's schemas (node.py _STEPS_SCHEMA and
// utils.py DEPLOY_STEP_SCHEMA): a list of objects with interface (one Ironic
// allows steps on) and step; args an object; for deploy steps args and
// priority (a whole number ≥ 0, or a string of digits) required too; no
// other keys. Ironic's clean step keys for child nodes and runbooks
// (execute_on_child_nodes, limit_child_node_execution, order) are refused:
// ironfleet has neither. Errors carry wire.CodeInvalidInput and read as
// Ironic's "Invalid clean_steps: …".
func Decode(flow Flow, raw json.RawMessage) ([]wire.Step, error) {
	bad := func(format string, args ...any) error {
		return wire.Errorf(wire.CodeInvalidInput, "Invalid %s_steps: %s", flow, fmt.Sprintf(format, args...))
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, bad("%s is not of type 'array'", raw)
	}
	allowed := []string{"interface", "step", "args"}
	required := []string{"interface", "step"}
	if flow == Deploy {
		allowed = append(allowed, "priority")
		required = []string{"interface", "step", "args", "priority"}
	}
	out := make([]wire.Step, 0, len(items))
	for _, item := range items {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(item, &obj); err != nil || obj == nil {
			return nil, bad("%s is not of type 'object'", item)
		}
		var extra []string
		for k := range obj {
			if !slices.Contains(allowed, k) {
				extra = append(extra, "'"+k+"'")
			}
		}
		if len(extra) > 0 {
			slices.Sort(extra)
			return nil, bad("Additional properties are not allowed (%s unexpected)", strings.Join(extra, ", "))
		}
		for _, k := range required {
			if _, ok := obj[k]; !ok {
				return nil, bad("'%s' is a required property", k)
			}
		}
		var s wire.Step
		if err := json.Unmarshal(obj["interface"], &s.Interface); err != nil || !slices.Contains(stepInterfaces, s.Interface) {
			var v any
			_ = json.Unmarshal(obj["interface"], &v) // decoded JSON decodes again
			return nil, bad("%s is not one of ['%s']", pyRepr(v), strings.Join(stepInterfaces, "', '"))
		}
		if err := json.Unmarshal(obj["step"], &s.Step); err != nil {
			return nil, bad("%s is not of type 'string'", obj["step"])
		}
		if s.Step == "" {
			return nil, bad("'' is too short")
		}
		if raw, ok := obj["args"]; ok {
			if err := json.Unmarshal(raw, &s.Args); err != nil || s.Args == nil {
				return nil, bad("%s is not of type 'object'", raw)
			}
		}
		if s.Args == nil {
			s.Args = map[string]any{}
		}
		if raw, ok := obj["priority"]; ok {
			p, err := priority(raw)
			if err != nil {
				return nil, bad("%s is not valid under any of the given schemas", raw)
			}
			s.Priority = p
		}
		out = append(out, s)
	}
	return out, nil
}

// priority reads a deploy step's priority: a whole number ≥ 0, or a
// non-empty string of digits.
func priority(raw json.RawMessage) (int, error) {
	var str string
	if json.Unmarshal(raw, &str) == nil {
		if str == "" || strings.Trim(str, "0123456789") != "" {
			return 0, fmt.Errorf("priority %q: want digits", str)
		}
		return strconv.Atoi(str)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var n json.Number
	if err := dec.Decode(&n); err != nil {
		return 0, err
	}
	i, err := strconv.Atoi(n.String())
	if err != nil || i < 0 {
		return 0, fmt.Errorf("priority %s: want a whole number ≥ 0", n)
	}
	return i, nil
}

// repr spells a user's step as Ironic's messages print it (a Python dict).
func repr(s wire.Step, flow Flow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{'interface': %s, 'step': %s", pyRepr(s.Interface), pyRepr(s.Step))
	if len(s.Args) > 0 {
		fmt.Fprintf(&b, ", 'args': %s", pyRepr(s.Args))
	}
	if flow == Deploy {
		fmt.Fprintf(&b, ", 'priority': %d", s.Priority)
	}
	b.WriteString("}")
	return b.String()
}

func pyRepr(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case string:
		return "'" + strings.ReplaceAll(v, "'", `\'`) + "'"
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = pyRepr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		parts := make([]string, 0, len(v))
		for _, k := range sortedKeys(v) {
			parts = append(parts, pyRepr(k)+": "+pyRepr(v[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}
