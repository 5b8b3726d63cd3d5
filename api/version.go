package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// Version is an Ironic API microversion, 1.Minor.
type Version struct{ Minor int }

func (v Version) String() string { return "1." + strconv.Itoa(v.Minor) }

// AtLeast reports whether v is minor or later.
func (v Version) AtLeast(minor int) bool { return v.Minor >= minor }

// The range of microversions served. Metal3's baremetal-operator requires
// 1.89 and, from 1.95, sends disable_power_off on every node create; every
// version up to 1.95 is gated as Ironic's
// ironic/api/controllers/v1/versions.py lists them, each field and
// endpoint honoured or refused in Ironic's words (README.md lists what
// each version adds and what ironfleet does with it). The agent speaks
// 1.82 (wire.AgentAPIVersion), inside the range.
var (
	MinVersion = Version{Minor: 1}
	MaxVersion = Version{Minor: 95}
)

// Headers of the microversion protocol and request IDs.
const (
	headerVersion    = "X-OpenStack-Ironic-API-Version"
	headerMinVersion = "X-OpenStack-Ironic-API-Minimum-Version"
	headerMaxVersion = "X-OpenStack-Ironic-API-Maximum-Version"
	headerRequestID  = "Openstack-Request-Id"
)

// parseVersion reads the request header: absent means 1.1, "latest" the
// maximum.
func parseVersion(h string) (Version, error) {
	h = strings.TrimSpace(h)
	switch {
	case h == "":
		return MinVersion, nil
	case strings.EqualFold(h, "latest"):
		return MaxVersion, nil
	}
	major, minor, ok := strings.Cut(h, ".")
	if !ok || major != "1" {
		return Version{}, fmt.Errorf("invalid value for %s header", headerVersion)
	}
	n, err := strconv.Atoi(minor)
	if err != nil || n < 0 || strconv.Itoa(n) != minor {
		return Version{}, fmt.Errorf("invalid value for %s header", headerVersion)
	}
	return Version{Minor: n}, nil
}

// versions is the middleware of every /v1 route: it sets the min/max
// headers, parses the requested version (406 with Ironic's body when out of
// range or malformed) and echoes the effective one.
func (s *Server) versions(c *gin.Context) {
	c.Header(headerMinVersion, MinVersion.String())
	c.Header(headerMaxVersion, MaxVersion.String())
	v, err := parseVersion(c.GetHeader(headerVersion))
	var desc string
	switch {
	case err != nil:
		desc = "Invalid value for X-OpenStack-Ironic-API-Version header"
	case v.Minor < MinVersion.Minor || v.Minor > MaxVersion.Minor:
		desc = fmt.Sprintf("Version %s was requested but the minor version is not supported by this service. The supported version range is: [%s, %s].",
			v, MinVersion, MaxVersion)
	}
	if desc != "" {
		// The only error Ironic shapes differently (webob's, not wsme's).
		inner, _ := json.Marshal(map[string]any{"code": http.StatusNotAcceptable, "title": "Not Acceptable", "description": desc})
		c.AbortWithStatusJSON(http.StatusNotAcceptable, gin.H{"error_message": string(inner)})
		return
	}
	c.Set(ctxVersion, v)
	c.Header(headerVersion, v.String())
	c.Next()
}

// version returns the request's microversion (MinVersion outside /v1).
func version(c *gin.Context) Version {
	if v, ok := c.Get(ctxVersion); ok {
		return v.(Version) //nolint:forcetypeassert // only versions sets it
	}
	return MinVersion
}

type link struct {
	Href string `json:"href"`
	Rel  string `json:"rel"`
	Type string `json:"type,omitempty"`
}

// base is the URL prefix of links: Config.PublicURL or the request's own.
func (s *Server) base(c *gin.Context) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

// links are Ironic's self and bookmark links of a resource path ("nodes/<uuid>").
func links(base, path string) []link {
	return []link{{Href: base + "/v1/" + path, Rel: "self"}, {Href: base + "/" + path, Rel: "bookmark"}}
}

func (s *Server) versionDoc(base string) gin.H {
	return gin.H{
		"id":          "v1",
		"links":       []link{{Href: base + "/v1/", Rel: "self"}},
		"status":      "CURRENT",
		"min_version": MinVersion.String(),
		"version":     MaxVersion.String(),
	}
}

// root answers GET /: version discovery, without version headers.
func (s *Server) root(c *gin.Context) {
	b := s.base(c)
	c.JSON(http.StatusOK, gin.H{
		"name":            "OpenStack Ironic API",
		"description":     "ironfleet: an Ironic-compatible bare-metal provisioning API (Ironic is an OpenStack project which enables the provision and management of baremetal machines).",
		"default_version": s.versionDoc(b),
		"versions":        []gin.H{s.versionDoc(b)},
	})
}

// v1 answers GET /v1 with the resources the requested version has.
func (s *Server) v1(c *gin.Context) {
	b, v := s.base(c), version(c)
	res := func(name string) []link {
		return []link{{Href: b + "/v1/" + name + "/", Rel: "self"}, {Href: b + "/" + name + "/", Rel: "bookmark"}}
	}
	out := gin.H{
		"id": "v1",
		"links": []link{
			{Href: b + "/v1/", Rel: "self"},
			{Href: "https://docs.openstack.org/ironic/latest/contributor/webapi.html", Rel: "describedby", Type: "text/html"},
		},
		"media_types": gin.H{"base": "application/json", "type": "application/vnd.openstack.ironic.v1+json"},
		"chassis":     res("chassis"),
		"nodes":       res("nodes"),
		"ports":       res("ports"),
		"drivers":     res("drivers"),
		"version":     s.versionDoc(b),
	}
	if v.AtLeast(23) {
		out["portgroups"] = res("portgroups")
	}
	if v.AtLeast(32) {
		out["volume"] = res("volume")
	}
	if v.AtLeast(22) {
		out["lookup"] = res("lookup")
		out["heartbeat"] = res("heartbeat")
	}
	if v.AtLeast(49) {
		out["conductors"] = res("conductors")
	}
	if v.AtLeast(allocationVersion) {
		out["allocations"] = res("allocations")
	}
	if v.AtLeast(55) {
		out["deploy_templates"] = res("deploy_templates")
	}
	c.JSON(http.StatusOK, out)
}
