package protocol

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
)

// Checksum is what an image file must hash to, in the forms Ironic gives
// it (instance_info image_checksum, or image_os_hash_algo with
// image_os_hash_value).
type Checksum struct {
	// Algo is ChecksumMD5, ChecksumSHA256 or ChecksumSHA512; empty means
	// the one whose hex digest has Value's length (32, 64 or 128 digits),
	// as ironic-python-agent's _get_algorithm_by_length.
	Algo string `json:"algo,omitempty"`
	// Value is the hex digest, or an http(s) URL of a checksum file that
	// the agent fetches: either one bare digest, or lines of "DIGEST
	// NAME" ("*NAME" too) or "ALGO (NAME) = DIGEST", of which the one
	// naming the image URL's file name is taken (as
	// ironic-python-agent's standby._fetch_checksum).
	Value string `json:"value"`
}

// Checksum algorithms.
const (
	ChecksumMD5    = "md5"
	ChecksumSHA256 = "sha256"
	ChecksumSHA512 = "sha512"
)

// checksumDigits is each algorithm's hex digest length.
var checksumDigits = map[string]int{ChecksumMD5: 32, ChecksumSHA256: 64, ChecksumSHA512: 128}

// ChecksumAlgoOf returns the algorithm whose hex digest is digest's
// length, or "" when none is.
func ChecksumAlgoOf(digest string) string {
	for algo, n := range checksumDigits {
		if len(digest) == n {
			return algo
		}
	}
	return ""
}

// IsURL reports whether Value is a checksum file's URL rather than a digest.
func (c Checksum) IsURL() bool {
	return strings.HasPrefix(c.Value, "http://") || strings.HasPrefix(c.Value, "https://")
}

// Check says what is wrong with c, if anything: an algorithm other than
// the three, a URL that is not one, or a digest that is not hex digits of
// its algorithm's length. A URL's digest is checked once fetched
// (CheckDigest).
func (c Checksum) Check() error {
	if c.Algo != "" {
		if err := CheckAlgo(c.Algo); err != nil {
			return err
		}
	}
	if c.IsURL() {
		if u, err := url.Parse(c.Value); err != nil || u.Host == "" {
			return fmt.Errorf("checksum URL %q is not a URL", c.Value)
		}
		return nil
	}
	_, err := CheckDigest(c.Algo, c.Value)
	return err
}

// CheckAlgo says whether algo is one of the three the agent verifies.
func CheckAlgo(algo string) error {
	if _, ok := checksumDigits[algo]; !ok {
		return fmt.Errorf("algorithm %q is not supported (want %s, %s or %s)", algo, ChecksumMD5, ChecksumSHA256, ChecksumSHA512)
	}
	return nil
}

// CheckDigest checks a hex digest against algo (empty: found from its
// length) and returns the algorithm.
func CheckDigest(algo, digest string) (string, error) {
	if algo == "" {
		if algo = ChecksumAlgoOf(digest); algo == "" {
			return "", fmt.Errorf("checksum %q: %d characters is the digest of no supported algorithm (32 for md5, 64 for sha256, 128 for sha512)", digest, len(digest))
		}
	}
	if _, err := hex.DecodeString(digest); err != nil || len(digest) != checksumDigits[algo] {
		return "", fmt.Errorf("checksum %q: want %d hex digits for %s", digest, checksumDigits[algo], algo)
	}
	return algo, nil
}

// Disk formats of WriteImageParams.DiskFormat, as Ironic's
// instance_info image_disk_format names them.
const (
	DiskFormatRaw   = "raw"
	DiskFormatQcow2 = "qcow2"
)
