package rootdevice

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The cases marked "ironic:" are ParseRootDeviceTestCase and
// MatchRootDeviceTestCase in openstack/ironic
// ironic/tests/unit/common/test_utils.py (the same cases as
// ironic_python_agent/tests/unit/test_device_hints.py), with Ironic's
// expected values.

func TestParseNormalizes(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]any
		want map[string]any
	}{
		{"ironic: without operators", map[string]any{
			"wwn": "123456", "model": "FOO model", "size": 12345.0,
			"serial": "foo-serial", "vendor": "foo VENDOR with space",
			"name": "/dev/sda", "wwn_with_extension": "123456111",
			"wwn_vendor_extension": "111", "rotational": true,
			"hctl": "1:0:0:0", "by_path": "/dev/disk/by-path/1:0:0:0"}, map[string]any{
			"wwn": "s== 123456", "model": "s== foo%20model",
			"size": "== 12345", "serial": "s== foo-serial",
			"vendor": "s== foo%20vendor%20with%20space",
			"name":   "s== /dev/sda", "wwn_with_extension": "s== 123456111",
			"wwn_vendor_extension": "s== 111", "rotational": true,
			"hctl":    "s== 1%3A0%3A0%3A0",
			"by_path": "s== /dev/disk/by-path/1%3A0%3A0%3A0"}},
		{"ironic: with operators", map[string]any{
			"wwn": "s== 123456", "model": "s== foo MODEL", "size": ">= 12345",
			"serial": "s!= foo-serial", "vendor": "s== foo VENDOR with space",
			"name":                 "<or> /dev/sda <or> /dev/sdb",
			"wwn_with_extension":   "s!= 123456111",
			"wwn_vendor_extension": "s== 111", "rotational": true,
			"hctl": "s== 1:0:0:0", "by_path": "s== /dev/disk/by-path/1:0:0:0"}, map[string]any{
			"wwn": "s== 123456", "model": "s== foo%20model", "size": ">= 12345",
			"serial": "s!= foo-serial", "vendor": "s== foo%20vendor%20with%20space",
			"name":                 "<or> /dev/sda <or> /dev/sdb",
			"wwn_with_extension":   "s!= 123456111",
			"wwn_vendor_extension": "s== 111", "rotational": true,
			"hctl": "s== 1%3A0%3A0%3A0", "by_path": "s== /dev/disk/by-path/1%3A0%3A0%3A0"}},
		{"ironic: string compare operator name", map[string]any{"name": "s== /dev/sdb"}, map[string]any{"name": "s== /dev/sdb"}},
		{"ironic: convert size int", map[string]any{"size": 12345.0}, map[string]any{"size": "== 12345"}},
		{"ironic: convert size string", map[string]any{"size": "12345"}, map[string]any{"size": "== 12345"}},
		{"ironic: int or", map[string]any{"size": "<or> 123 <or> 456 <or> 789"}, map[string]any{"size": "<or> 123 <or> 456 <or> 789"}},
		{"ironic: string or space", map[string]any{"model": "<or> foo <or> foo bar <or> bar"}, map[string]any{"model": "<or> foo <or> foo%20bar <or> bar"}},
		{"ironic: normalize op no space", map[string]any{"model": "s!= SpongeBob"}, map[string]any{"model": "s!= spongebob"}},
		{"ironic: normalize no op space", map[string]any{"model": "no operators"}, map[string]any{"model": "s== no%20operators"}},
		{"ironic: normalize op space", map[string]any{"model": "s== test string with space"}, map[string]any{"model": "s== test%20string%20with%20space"}},
		{"ironic: size without space after the operator", map[string]any{"size": ">=100"}, map[string]any{"size": ">= 100"}},
		{"ironic: or with a trailing operator", map[string]any{"model": "<or> model 5 <or> foomodel <or> small model <or>"},
			map[string]any{"model": "<or> model%205 <or> foomodel <or> small%20model"}},
		{"all-in splits its values", map[string]any{"model": "<all-in> Foo bar"}, map[string]any{"model": "<all-in> foo <all-in> bar"}},
		{"ironic: rotational true forms", map[string]any{"rotational": "yes"}, map[string]any{"rotational": true}},
		{"ironic: rotational false forms", map[string]any{"rotational": "off"}, map[string]any{"rotational": false}},
		{"rotational as a number", map[string]any{"rotational": 0.0}, map[string]any{"rotational": false}},
		{"a bare name is under /dev", map[string]any{"name": "vdb"}, map[string]any{"name": "s== /dev/vdb"}},
		{"bare names in or", map[string]any{"name": "<or> sda <or> /dev/md0"}, map[string]any{"name": "<or> /dev/sda <or> /dev/md0"}},
		{"a substring of a name stays", map[string]any{"name": "<in> nvme"}, map[string]any{"name": "<in> nvme"}},
		{"legacy = is >=", map[string]any{"size": "= 10"}, map[string]any{"size": "= 10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := h.normalized(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseNoHints(t *testing.T) {
	for _, in := range []any{nil, map[string]any{}, "", false, []any{}} {
		h, err := Parse(in)
		if err != nil || !h.Empty() {
			t.Errorf("Parse(%#v) = %v, %v; want no hints (ironic: no hints)", in, h, err)
		}
	}
}

// TestParseRefuses is a table of bad input, Ironic's and worse: each is
// refused with an *Error naming the hint, and none panics.
func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name     string
		in       any
		wantHint string
		wantMsg  string
	}{
		{"ironic: size not-int", map[string]any{"size": "not-int"}, "size", "not an integer"},
		{"ironic: size negative", map[string]any{"size": -123.0}, "size", "positive integer"},
		{"ironic: size zero", map[string]any{"size": 0.0}, "size", "positive integer"},
		{"ironic: int or invalid", map[string]any{"size": "<or> 123 <or> non-int <or> 789"}, "size", "not an integer"},
		{"ironic: invalid rotational", map[string]any{"rotational": "not-bool"}, "rotational", "not a Boolean"},
		{"ironic: invalid wwn", map[string]any{"wwn": 123.0}, "wwn", "not a string"},
		{"ironic: invalid wwn_with_extension", map[string]any{"wwn_with_extension": 123.0}, "wwn_with_extension", "not a string"},
		{"ironic: invalid wwn_vendor_extension", map[string]any{"wwn_vendor_extension": 123.0}, "wwn_vendor_extension", "not a string"},
		{"ironic: invalid model", map[string]any{"model": 123.0}, "model", "not a string"},
		{"ironic: invalid serial", map[string]any{"serial": 123.0}, "serial", "not a string"},
		{"ironic: invalid vendor", map[string]any{"vendor": 123.0}, "vendor", "not a string"},
		{"ironic: invalid name", map[string]any{"name": 123.0}, "name", "not a string"},
		{"ironic: invalid hctl", map[string]any{"hctl": 123.0}, "hctl", "not a string"},
		{"ironic: invalid by_path", map[string]any{"by_path": 123.0}, "by_path", "not a string"},
		{"ironic: non-existent hint", map[string]any{"non-existent": "foo"}, "non-existent", `The hints "non-existent" are invalid`},
		{"ironic: empty expression", map[string]any{"size": ""}, "size", "is empty"},
		{"blank string hint", map[string]any{"model": "   "}, "model", "is empty"},
		{"operator without value", map[string]any{"serial": "s=="}, "serial", "no value"},
		{"or without values", map[string]any{"serial": "<or> <or>"}, "serial", "no value"},
		{"tran is not reported", map[string]any{"tran": "nvme"}, "tran", "invalid"},
		{"numeric operator on a string", map[string]any{"model": ">= 5"}, "model", "compares numbers"},
		{"range on a string", map[string]any{"serial": "<range-in> [ 1 2 ]"}, "serial", "compares numbers"},
		{"string operator on size", map[string]any{"size": "s== 10"}, "size", "compares strings"},
		{"substring on size", map[string]any{"size": "<in> 10"}, "size", "compares strings"},
		{"unary operator with two values", map[string]any{"serial": "s== a s== b"}, "serial", "takes one value"},
		{"size with two values", map[string]any{"size": ">= 1 >= 2"}, "size", "takes one value"},
		{"size fraction", map[string]any{"size": 1.5}, "size", "not an integer"},
		{"size bool", map[string]any{"size": true}, "size", "not an integer"},
		{"size object", map[string]any{"size": map[string]any{"gt": 1.0}}, "size", "not an integer"},
		{"size overflow", map[string]any{"size": "99999999999999999999999"}, "size", "not an integer"},
		{"range without brackets", map[string]any{"size": "<range-in> 10 20"}, "size", "must open"},
		{"range unclosed", map[string]any{"size": "<range-in> [ 10 20"}, "size", "must close"},
		{"range one number", map[string]any{"size": "<range-in> [ 10 ]"}, "size", "two numbers"},
		{"range not numbers", map[string]any{"size": "<range-in> [ a b ]"}, "size", "two numbers"},
		{"range NaN", map[string]any{"size": "<range-in> [ nan 2 ]"}, "size", "two numbers"},
		{"range reversed", map[string]any{"size": "<range-in> ( 20 10 )"}, "size", "no larger"},
		{"range bracket only", map[string]any{"size": "<range-in> ["}, "size", "needs brackets"},
		{"rotational null", map[string]any{"rotational": nil}, "rotational", "not a Boolean"},
		{"rotational 2", map[string]any{"rotational": 2.0}, "rotational", "not a Boolean"},
		{"string list", map[string]any{"serial": []any{"a"}}, "serial", "not a string"},
		{"not an object", "sda", "", "must be an object"},
		{"a list", []any{"sda"}, "", "must be an object"},
		{"a number", 3.0, "", "must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			var he *Error
			if !errors.As(err, &he) {
				t.Fatalf("Parse(%#v) error = %v, want an *Error", tt.in, err)
			}
			if he.Hint != tt.wantHint || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Parse(%#v) = hint %q, %q; want hint %q and a message containing %q", tt.in, he.Hint, err, tt.wantHint, tt.wantMsg)
			}
		})
	}
}

// FuzzParse: no input panics, and whatever parses can be matched.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"size": ">= 10"}`, `{"model": "<or> a <or> b"}`, `{"size": "<range-in> ( 1 2 ]"}`,
		`{"serial": "<all-in> x y"}`, `{"rotational": "yes"}`, `{"name": "s=="}`, `[1]`, `{"size": 1e400}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil {
			return
		}
		h, err := Parse(v)
		if err != nil {
			return
		}
		h.Find(ironicDevices)
		_ = h.String()
	})
}

// ironicDevices are MatchRootDeviceTestCase's devices, with Ironic's
// rotational "yes" as true and an absent one as false.
var ironicDevices = []Device{
	{Name: "/dev/sda", SizeBytes: 64424509440, Model: "ok model", Serial: "fakeserial"},
	{Name: "/dev/sdb", SizeBytes: 128849018880, Model: "big model", Serial: "veryfakeserial", Rotational: true},
	{Name: "/dev/sdc", SizeBytes: 10737418240, Model: "small model", Serial: "veryveryfakeserial"},
}

func TestFind(t *testing.T) {
	lab := []Device{
		{Name: "/dev/vda", SizeBytes: 2 << 30, Serial: "ironfleet-disk0", Vendor: "0x1af4", Rotational: true,
			ByPath: "/dev/disk/by-path/pci-0000:00:04.0"},
		{Name: "/dev/vdb", SizeBytes: 3 << 30, Serial: "ironfleet-disk1", Vendor: "0x1af4", Rotational: true,
			ByPath: "/dev/disk/by-path/pci-0000:00:05.0"},
		{Name: "/dev/sda", SizeBytes: 480 << 30, Model: "INTEL SSDSC2KB48", Vendor: "ATA", HCTL: "0:0:0:0",
			WWN: "0x55cd2e415123abcd", WWNWithExtension: "0x55cd2e415123abcd"},
	}
	tests := []struct {
		name  string
		devs  []Device
		hints map[string]any
		want  []int
	}{
		{"ironic: one hint", ironicDevices, map[string]any{"size": ">= 70"}, []int{1}},
		{"ironic: range in", ironicDevices, map[string]any{"size": "<range-in> ( 10 100 )"}, []int{0}},
		// Ironic skips sda, whose rotational it lacks; an inventory always has one.
		{"ironic: rotational", ironicDevices, map[string]any{"rotational": false}, []int{0, 2}},
		{"ironic: rotational with size", ironicDevices, map[string]any{"size": ">=100", "rotational": true}, []int{1}},
		{"ironic: multiple hints", ironicDevices, map[string]any{"size": ">= 50", "model": "s==big model", "serial": "s==veryfakeserial"}, []int{1}},
		{"ironic: multiple hints 2", ironicDevices, map[string]any{"size": "<= 20",
			"model": "<or> model 5 <or> foomodel <or> small model <or>", "serial": "s== veryveryfakeserial"}, []int{2}},
		{"ironic: multiple hints 3", ironicDevices, map[string]any{"rotational": false, "model": "<in> small"}, []int{2}},
		{"ironic: no operators", ironicDevices, map[string]any{"size": "120", "model": "big model", "serial": "veryfakeserial"}, []int{1}},
		{"ironic: no device found", ironicDevices, map[string]any{"size": ">=50", "model": "s==foo"}, nil},
		{"ironic: empty device attribute", []Device{{Name: "/dev/sda", Model: " "}}, map[string]any{"model": "foo"}, nil},
		{"ironic: all", ironicDevices, map[string]any{"size": ">= 10"}, []int{0, 1, 2}},
		{"ironic: none", ironicDevices, map[string]any{"size": ">= 100500"}, nil},
		{"ironic: name", ironicDevices, map[string]any{"name": "s== /dev/sda"}, []int{0}},
		{"range inclusive bounds", ironicDevices, map[string]any{"size": "<range-in> [10 60]"}, []int{0, 2}},
		{"range exclusive bounds", ironicDevices, map[string]any{"size": "<range-in> (10 60)"}, nil},
		{"size or compares numbers", ironicDevices, map[string]any{"size": "<or> 10 <or> 120"}, []int{1, 2}},
		{"size !=", ironicDevices, map[string]any{"size": "!= 60"}, []int{1, 2}},
		{"size <", ironicDevices, map[string]any{"size": "< 60"}, []int{2}},
		{"size >", ironicDevices, map[string]any{"size": "> 60"}, []int{1}},
		{"size legacy =", ironicDevices, map[string]any{"size": "= 60"}, []int{0, 1}},
		{"string ordering", ironicDevices, map[string]any{"serial": "s< veryfakeserial"}, []int{0}},
		{"string >=", ironicDevices, map[string]any{"serial": "s>= veryfakeserial"}, []int{1, 2}},
		{"string !=", ironicDevices, map[string]any{"serial": "s!= fakeserial"}, []int{1, 2}},
		{"string <=", ironicDevices, map[string]any{"serial": "s<= fakeserial"}, []int{0}},
		{"string >", ironicDevices, map[string]any{"serial": "s> veryfakeserial"}, []int{2}},
		{"all-in", ironicDevices, map[string]any{"serial": "<all-in> very fake"}, []int{1, 2}},
		{"case and space insensitive", ironicDevices, map[string]any{"model": "  BIG Model "}, []int{1}},
		{"serial picks the second disk", lab, map[string]any{"serial": "ironfleet-disk1"}, []int{1}},
		{"name", lab, map[string]any{"name": "/dev/vdb"}, []int{1}},
		{"bare name", lab, map[string]any{"name": "VDB"}, []int{1}},
		{"name substring", lab, map[string]any{"name": "<in> vd"}, []int{0, 1}},
		{"by_path", lab, map[string]any{"by_path": "/dev/disk/by-path/pci-0000:00:05.0"}, []int{1}},
		{"hctl", lab, map[string]any{"hctl": "0:0:0:0"}, []int{2}},
		{"wwn", lab, map[string]any{"wwn": "0x55CD2E415123ABCD"}, []int{2}},
		{"wwn_with_extension", lab, map[string]any{"wwn_with_extension": "0x55cd2e415123abcd"}, []int{2}},
		{"a disk without the attribute never matches", lab, map[string]any{"wwn_vendor_extension": "s!= 0x1"}, nil},
		{"vendor", lab, map[string]any{"vendor": "ata"}, []int{2}},
		{"several hints narrow", lab, map[string]any{"vendor": "0x1af4", "size": ">= 3"}, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Parse(tt.hints)
			if err != nil {
				t.Fatal(err)
			}
			if got := h.Find(tt.devs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Find(%v) = %v, want %v", tt.hints, got, tt.want)
			}
		})
	}
}

func TestForDeploy(t *testing.T) {
	tests := []struct {
		name      string
		ii, props map[string]any
		wantHints string
		wantErr   string
	}{
		{"none", nil, nil, "{}", ""},
		{"properties", nil, map[string]any{"root_device": map[string]any{"serial": "x"}}, `{"serial":"x"}`, ""},
		{"operators shown as given", nil, map[string]any{"root_device": map[string]any{"size": ">= 2", "model": "<in> a&b"}},
			`{"model":"<in> a&b","size":">= 2"}`, ""},
		{"instance_info wins", map[string]any{"root_device": map[string]any{"name": "/dev/vdb"}},
			map[string]any{"root_device": map[string]any{"serial": "x"}}, `{"name":"/dev/vdb"}`, ""},
		{"empty instance_info falls back", map[string]any{"root_device": map[string]any{}},
			map[string]any{"root_device": map[string]any{"serial": "x"}}, `{"serial":"x"}`, ""},
		{"invalid names the source and hint", nil, map[string]any{"root_device": map[string]any{"size": "big"}}, "",
			`Failed to validate the root device hints {"size":"big"} (from the node's properties.root_device) for node n1: Root device hint "size" is not an integer value`},
		{"invalid instance_info", map[string]any{"root_device": map[string]any{"colour": "red"}}, nil, "",
			`(from the node's instance_info.root_device) for node n1: The hints "colour" are invalid`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ForDeploy("n1", tt.ii, tt.props)
			if tt.wantErr != "" {
				var he *Error
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &he) {
					t.Fatalf("ForDeploy error = %v, want an *Error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := h.String(); got != tt.wantHints {
				t.Errorf("hints = %s, want %s", got, tt.wantHints)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	// Python: urllib.parse.quote(s) for each.
	for in, want := range map[string]string{
		"1:0:0:0": "1%3A0%3A0%3A0", "a b": "a%20b", "/dev/sda": "/dev/sda", "x_y.z-w~": "x_y.z-w~",
		"é": "%C3%A9", "<or>": "%3Cor%3E", "100%": "100%25",
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %q, want %q", in, got, want)
		}
	}
}
