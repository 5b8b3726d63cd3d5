package agent

import (
	"bufio"
	"context"
	"crypto/md5" //nolint:gosec // md5 is one of the checksums Ironic passes (image_checksum of 32 digits); it verifies a transfer, it signs nothing
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/ironfleet/ironfleet/agent/protocol"
)

// maxChecksumFile bounds a checksum file's size: a SHA512SUMS of a few
// thousand images fits; anything larger is not a checksum file.
const maxChecksumFile = 1 << 20

// newHash returns a hash of one of protocol's checksum algorithms.
func newHash(algo string) hash.Hash {
	switch algo {
	case protocol.ChecksumMD5:
		return md5.New() //nolint:gosec // see the import
	case protocol.ChecksumSHA512:
		return sha512.New()
	default:
		return sha256.New()
	}
}

// expectedChecksum resolves p's checksum to an algorithm and a lower-case
// hex digest, fetching the checksum file when the value is a URL.
func (w *imageWriter) expectedChecksum(ctx context.Context, p protocol.WriteImageParams) (algo, digest string, err error) {
	c := p.Checksum
	digest = c.Value
	if c.IsURL() {
		if digest, err = w.fetchChecksum(ctx, c.Value, p.URL); err != nil {
			return "", "", err
		}
	}
	algo, err = protocol.CheckDigest(c.Algo, digest)
	if err != nil {
		if c.IsURL() {
			return "", "", fmt.Errorf("%w: checksum file %s: %w", protocol.ErrDownload, redactURL(c.Value), err)
		}
		return "", "", fmt.Errorf("%w: %w", protocol.ErrInvalidParams, err)
	}
	return algo, strings.ToLower(digest), nil
}

// fetchChecksum downloads a checksum file and returns the digest it gives
// for the image at imageURL, as ironic-python-agent's
// standby._fetch_checksum (and ironic's checksum_utils.get_checksum_from_url,
// its copy) read one: blank lines and "#" comments are skipped; a file of
// one line without a space is the digest itself; otherwise the line that
// names the image's file name ("DIGEST  NAME", "DIGEST *NAME", or BSD's
// "ALGO (NAME) = DIGEST") gives it.
func (w *imageWriter) fetchChecksum(ctx context.Context, checksumURL, imageURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, checksumURL, nil)
	if err != nil {
		return "", fmt.Errorf("%w: checksum file: %w", protocol.ErrDownload, err)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return "", downloadErr(ctx, "GET checksum file "+redactURL(checksumURL), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%w: GET checksum file %s: %s", protocol.ErrDownload, redactURL(checksumURL), resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxChecksumFile+1))
	if err != nil {
		return "", downloadErr(ctx, "read checksum file "+redactURL(checksumURL), err)
	}
	if len(body) > maxChecksumFile {
		return "", fmt.Errorf("%w: checksum file %s is larger than %d bytes", protocol.ErrDownload, redactURL(checksumURL), maxChecksumFile)
	}
	name := ""
	if u, err := url.Parse(imageURL); err == nil {
		name = path.Base(u.Path)
	}
	digest, err := checksumFor(string(body), name)
	if err != nil {
		return "", fmt.Errorf("%w: checksum file %s: %w", protocol.ErrDownload, redactURL(checksumURL), err)
	}
	return digest, nil
}

var (
	digestFirst = regexp.MustCompile(`^([0-9a-fA-F]{128}|[0-9a-fA-F]{64}|[0-9a-fA-F]{32})\s`)
	digestLast  = regexp.MustCompile(`\s([0-9a-fA-F]{128}|[0-9a-fA-F]{64}|[0-9a-fA-F]{32})$`)
	digestOnly  = regexp.MustCompile(`^([0-9a-fA-F]{128}|[0-9a-fA-F]{64}|[0-9a-fA-F]{32})$`)
)

// checksumFor picks the digest of the file called name out of a checksum
// file's text (see fetchChecksum).
func checksumFor(text, name string) (string, error) {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	switch {
	case len(lines) == 0:
		return "", fmt.Errorf("the file is empty")
	case len(lines) == 1 && !strings.Contains(lines[0], " "):
		if m := digestOnly.FindStringSubmatch(lines[0]); m != nil {
			return m[1], nil
		}
		return "", fmt.Errorf("its one line %q is not an md5, sha256 or sha512 digest", lines[0])
	}
	quoted := regexp.QuoteMeta(name)
	named := []*regexp.Regexp{
		regexp.MustCompile(`\s\*?` + quoted + `$`),
		regexp.MustCompile(`\s\(` + quoted + `\)\s`),
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "#") || !named[0].MatchString(l) && !named[1].MatchString(l) {
			continue
		}
		for _, re := range []*regexp.Regexp{digestFirst, digestLast} {
			if m := re.FindStringSubmatch(l); m != nil {
				return m[1], nil
			}
		}
	}
	return "", fmt.Errorf("no line gives the checksum of %q", name)
}
