// Package rootdevice parses, validates and matches root device hints: the
// node's properties.root_device (or instance_info.root_device), which tells
// a deploy which of the machine's disks to write.
//
// It follows Ironic (parse_root_device_hints, find_devices_by_hints and
// match_root_device_hints in ironic/common/utils.py, the same code as
// ironic_python_agent/device_hints.py) with the operators of oslo.utils'
// specs_matcher (oslo_utils/specs_matcher.py):
//
//   - hints: size (GiB, a positive integer), rotational (a Boolean), and the
//     strings name, serial, wwn, wwn_with_extension, wwn_vendor_extension,
//     model, vendor, hctl, by_path;
//   - name is /dev/<kernel name>; a bare "sda" is read as /dev/sda (where
//     Ironic would compare it as given and never match);
//   - a string hint without an operator means "s==", a size without one
//     "=="; strings are compared trimmed, lower-cased and URL-quoted, on
//     both sides, as Ironic's _normalize_hint_expression does;
//   - string operators s== s!= s< s<= s> s>=, <in> (substring), <all-in>
//     (every value a substring), <or> (equal to any); size operators
//     == != < <= > >= (and "=", specs_matcher's legacy ">="), <or> and
//     <range-in> ( a b ] with "(" and ")" exclusive, "[" and "]" inclusive.
//
// Where Ironic would accept a hint that can never match or would fail
// inside the agent, Parse refuses it up front, saying which hint and why:
// a numeric operator on a string hint (specs_matcher raises on float() of
// a model), a string operator on size (Ironic compares a float to a
// string: never equal), a unary operator given several values (specs_matcher
// silently uses the first), "tran" (accepted by Ironic, but ironfleet's
// agent does not report a disk's transport). Size's <or> compares numbers
// (Ironic's compares a float to a string and never matches, although its
// own tests accept "<or> 123 <or> 456"); <all-in> tests each of its
// whitespace-separated values for a substring, as specs_matcher documents
// it. A disk without the hinted attribute never matches it (Ironic skips a
// device whose attribute is empty).
package rootdevice

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// kind is a hint's value type, as Ironic's VALID_ROOT_DEVICE_HINTS.
type kind int

const (
	kindString kind = iota
	kindSize
	kindBool
)

// valid lists the hints and their kinds.
var valid = map[string]kind{
	"size": kindSize, "rotational": kindBool,
	"name": kindString, "serial": kindString, "wwn": kindString, "wwn_with_extension": kindString,
	"wwn_vendor_extension": kindString, "model": kindString, "vendor": kindString, "hctl": kindString,
	"by_path": kindString,
}

// Device is one disk as the hints see it, in IPA's BlockDevice terms
// (ironic_python_agent/hardware.py). An empty string is an attribute the
// disk does not report.
type Device struct {
	Name               string // /dev/sda
	SizeBytes          int64
	Rotational         bool
	Model              string
	Vendor             string
	Serial             string
	WWN                string
	WWNWithExtension   string
	WWNVendorExtension string
	HCTL               string // 1:0:0:0
	ByPath             string // /dev/disk/by-path/pci-0000:00:04.0
}

func (d Device) attr(name string) string {
	switch name {
	case "name":
		return d.Name
	case "model":
		return d.Model
	case "vendor":
		return d.Vendor
	case "serial":
		return d.Serial
	case "wwn":
		return d.WWN
	case "wwn_with_extension":
		return d.WWNWithExtension
	case "wwn_vendor_extension":
		return d.WWNVendorExtension
	case "hctl":
		return d.HCTL
	case "by_path":
		return d.ByPath
	}
	return ""
}

// Hints are parsed root device hints; the zero value has none.
type Hints struct {
	list []hint // sorted by name
	raw  map[string]any
}

type hint struct {
	name   string
	kind   kind
	op     string
	values []string  // normalized, for string hints
	nums   []float64 // for size
	lo, hi bool      // <range-in>: inclusive lower, upper bound
	b      bool      // rotational
}

// Error is a hint Parse refused. Its message is Ironic's words where Ironic
// has them.
type Error struct {
	Hint string // the hint's name; "" when root_device itself is malformed
	msg  string
}

func (e *Error) Error() string { return e.msg }

func errorf(name, format string, args ...any) error {
	return &Error{Hint: name, msg: fmt.Sprintf(format, args...)}
}

// Parse parses and validates root_device as Ironic's
// parse_root_device_hints does; nil or empty means no hints. It never
// panics, whatever it is given.
func Parse(root any) (Hints, error) {
	if empty(root) {
		return Hints{}, nil
	}
	m, ok := root.(map[string]any)
	if !ok {
		return Hints{}, errorf("", "root_device must be an object mapping hint names to values, not %s", jsonOf(root))
	}
	var bad []string
	for name := range m {
		if _, ok := valid[name]; !ok {
			bad = append(bad, name)
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		names := make([]string, 0, len(valid))
		for n := range valid {
			names = append(names, n)
		}
		slices.Sort(names)
		return Hints{}, errorf(bad[0], "The hints \"%s\" are invalid. Valid hints are: \"%s\"", strings.Join(bad, ", "), strings.Join(names, ", "))
	}
	h := Hints{raw: m}
	for name, v := range m {
		p, err := parseHint(name, v)
		if err != nil {
			return Hints{}, err
		}
		h.list = append(h.list, p)
	}
	slices.SortFunc(h.list, func(a, b hint) int { return strings.Compare(a.name, b.name) })
	return h, nil
}

// Empty says there are no hints: the deploy chooses its disk by default.
func (h Hints) Empty() bool { return len(h.list) == 0 }

// String renders the hints as given, as JSON with sorted keys.
func (h Hints) String() string {
	if h.Empty() {
		return "{}"
	}
	return jsonOf(h.raw)
}

// Match says whether d satisfies every hint.
func (h Hints) Match(d Device) bool {
	for _, p := range h.list {
		if !p.match(d) {
			return false
		}
	}
	return true
}

// Find returns the indexes of the devices that satisfy every hint, in
// their order (Ironic's find_devices_by_hints).
func (h Hints) Find(devs []Device) []int {
	var out []int
	for i, d := range devs {
		if h.Match(d) {
			out = append(out, i)
		}
	}
	return out
}

// ops lists specs_matcher's operators in the order its grammar tries them,
// the n-ary ones first, so that "<or>" is not read as "<" and "==" not as
// "=".
var ops = []string{"<or>", "<all-in>", "<range-in>", "==", "=", "!=", "<in>", ">=", "<=", ">", "<",
	"s==", "s!=", "s<=", "s<", "s>=", "s>"}

// split reads an expression as Ironic's _extract_hint_operator_and_values:
// trimmed and lower-cased; its leading operator ("" for none); its values,
// the text between repetitions of the operator, each trimmed.
func split(name string, v any) (op string, values []string, err error) {
	s := strings.ToLower(strings.TrimSpace(exprString(v)))
	if s == "" {
		return "", nil, errorf(name, "Root device hint %q expression is empty", name)
	}
	for _, o := range ops {
		if strings.HasPrefix(s, o) {
			op = o
			break
		}
	}
	if op == "" {
		return "", []string{s}, nil
	}
	for part := range strings.SplitSeq(s, op) {
		if part = strings.TrimSpace(part); part != "" {
			values = append(values, part)
		}
	}
	if len(values) == 0 {
		return "", nil, errorf(name, "Root device hint %q: operator %s is given no value", name, op)
	}
	return op, values, nil
}

func parseHint(name string, v any) (hint, error) {
	p := hint{name: name, kind: valid[name]}
	switch p.kind {
	case kindBool:
		b, ok := boolOf(v)
		if !ok {
			return p, errorf(name, "Root device hint %q is not a Boolean value. Current value: %s", name, jsonOf(v))
		}
		p.b = b
		return p, nil
	case kindString:
		if _, ok := v.(string); !ok {
			return p, errorf(name, "Root device hint %q is not a string value. Hint expression: %s", name, jsonOf(v))
		}
	case kindSize:
		switch v.(type) {
		case string, float64, int, int64, json.Number:
		default:
			return p, errorf(name, "Root device hint %q is not an integer value. Current value: %s", name, jsonOf(v))
		}
	}
	op, values, err := split(name, v)
	if err != nil {
		return p, err
	}
	p.op = op
	if p.kind == kindString {
		return parseString(p, values)
	}
	return parseSize(p, v, values)
}

func parseString(p hint, values []string) (hint, error) {
	switch p.op {
	case "":
		p.op = "s=="
	case "s==", "s!=", "s<", "s<=", "s>", "s>=", "<in>":
		if len(values) > 1 {
			return p, errorf(p.name, "Root device hint %q: operator %s takes one value, given %d", p.name, p.op, len(values))
		}
	case "<or>":
	case "<all-in>":
		values = strings.Fields(strings.Join(values, " "))
	default:
		return p, errorf(p.name, "Root device hint %q is a string: operator %s compares numbers; use s==, s!=, s<, s<=, s>, s>=, <in>, <all-in> or <or>", p.name, p.op)
	}
	for _, v := range values {
		// IPA names every disk /dev/<kernel name>: a bare name ("sda"),
		// which Ironic would compare as given and never match, means
		// /dev/sda. Substring operators find it as it is.
		if p.name == "name" && p.op != "<in>" && p.op != "<all-in>" && !strings.HasPrefix(v, "/") {
			v = "/dev/" + v
		}
		p.values = append(p.values, quote(v))
	}
	return p, nil
}

func parseSize(p hint, v any, values []string) (hint, error) {
	notInt := func() error {
		return errorf(p.name, "Root device hint %q is not an integer value. Current value: %s", p.name, jsonOf(v))
	}
	switch p.op {
	case "":
		p.op = "=="
	case "==", "=", "!=", ">=", "<=", ">", "<":
		if len(values) > 1 {
			return p, errorf(p.name, "Root device hint %q: operator %s takes one value, given %d", p.name, p.op, len(values))
		}
	case "<or>":
	case "<range-in>":
		return parseRange(p, v, values[0])
	default:
		return p, errorf(p.name, "Root device hint %q is a number of GiB: operator %s compares strings; use ==, !=, <, <=, >, >=, <or> or <range-in>", p.name, p.op)
	}
	for _, s := range values {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return p, notInt()
		}
		if n <= 0 {
			return p, errorf(p.name, "Root device hint %q should be a positive integer. Current value: %s", p.name, jsonOf(v))
		}
		p.nums = append(p.nums, float64(n))
	}
	return p, nil
}

// parseRange reads <range-in>'s "( 10 20 ]": a bracket, two numbers, a
// bracket (spaces around the brackets optional, where specs_matcher needs
// them).
func parseRange(p hint, v any, s string) (hint, error) {
	bad := func(why string) error {
		return errorf(p.name, "Root device hint %q: <range-in> %s; write it as \"<range-in> [ 10 20 ]\", ( ) exclusive, [ ] inclusive. Current value: %s", p.name, why, jsonOf(v))
	}
	if len(s) < 2 {
		return p, bad("needs brackets")
	}
	switch s[0] {
	case '[':
		p.lo = true
	case '(':
	default:
		return p, bad("must open with ( or [")
	}
	switch s[len(s)-1] {
	case ']':
		p.hi = true
	case ')':
	default:
		return p, bad("must close with ) or ]")
	}
	f := strings.Fields(s[1 : len(s)-1])
	if len(f) != 2 {
		return p, bad("needs two numbers")
	}
	for _, x := range f {
		n, err := strconv.ParseFloat(x, 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			return p, bad("needs two numbers")
		}
		p.nums = append(p.nums, n)
	}
	if p.nums[0] > p.nums[1] {
		return p, bad("needs its first number no larger than its second")
	}
	return p, nil
}

func (p hint) match(d Device) bool {
	switch p.kind {
	case kindBool:
		return d.Rotational == p.b
	case kindSize:
		return p.matchSize(float64(d.SizeBytes) / (1 << 30))
	}
	v := strings.ToLower(strings.TrimSpace(d.attr(p.name)))
	if v == "" {
		return false // Ironic: "has an empty value. Skipping device."
	}
	v = quote(v)
	want := p.values[0]
	switch p.op {
	case "s==":
		return v == want
	case "s!=":
		return v != want
	case "s<":
		return v < want
	case "s<=":
		return v <= want
	case "s>":
		return v > want
	case "s>=":
		return v >= want
	case "<in>":
		return strings.Contains(v, want)
	case "<all-in>":
		return !slices.ContainsFunc(p.values, func(w string) bool { return !strings.Contains(v, w) })
	case "<or>":
		return slices.Contains(p.values, v)
	}
	return false
}

func (p hint) matchSize(gib float64) bool {
	n := p.nums[0]
	switch p.op {
	case "==":
		return gib == n
	case "!=":
		return gib != n
	case "<":
		return gib < n
	case "<=":
		return gib <= n
	case ">":
		return gib > n
	case ">=", "=":
		return gib >= n
	case "<or>":
		return slices.Contains(p.nums, gib)
	case "<range-in>":
		lo := gib > n || p.lo && gib == n
		hi := gib < p.nums[1] || p.hi && gib == p.nums[1]
		return lo && hi
	}
	return false
}

// quote is Python's urllib.parse.quote with its default safe "/": what
// Ironic normalizes hint and device values with.
func quote(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := range len(s) {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_.-~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// boolOf is oslo's strutils.bool_from_string(strict=True).
func boolOf(v any) (bool, bool) {
	switch v := v.(type) {
	case bool:
		return v, true
	case float64:
		switch v {
		case 1:
			return true, true
		case 0:
			return false, true
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "1", "t", "true", "on", "y", "yes":
			return true, true
		case "0", "f", "false", "off", "n", "no":
			return false, true
		}
	}
	return false, false
}

// exprString is Python's str() of a decoded JSON value, for the values a
// size hint may be: whole numbers print without a fraction.
func exprString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e18 {
			return strconv.FormatInt(int64(v), 10)
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// empty is Python's falsiness for a decoded JSON value, with which Ironic
// decides there are no hints.
func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(v) == 0
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case bool:
		return !v
	}
	return false
}

// jsonOf renders v for a message as JSON, operators unescaped (">= 2",
// not "\u003e= 2").
func jsonOf(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// normalized renders the parsed hints as Ironic's parse_root_device_hints
// returns them ("s== foo%20model", "== 12345", true), for tests to compare
// with Ironic's own expectations.
func (h Hints) normalized() map[string]any {
	out := map[string]any{}
	for _, p := range h.list {
		switch p.kind {
		case kindBool:
			out[p.name] = p.b
		case kindSize:
			if p.op == "<range-in>" {
				out[p.name] = p.op
				continue
			}
			vs := make([]string, len(p.nums))
			for i, n := range p.nums {
				vs[i] = strconv.FormatFloat(n, 'f', -1, 64)
			}
			out[p.name] = p.op + " " + strings.Join(vs, " "+p.op+" ")
		default:
			out[p.name] = p.op + " " + strings.Join(p.values, " "+p.op+" ")
		}
	}
	return out
}
