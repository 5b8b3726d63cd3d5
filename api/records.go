package api

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport"
)

// What the resources kept in transport.Records (allocations, deploy
// templates, node history) share: trait names, and listing a page of
// rendered documents.

// listQuery is the paging and sorting of a records list.
type listQuery struct {
	limit   int
	marker  string
	sortKey string
	desc    bool
}

// readListQuery reads limit, marker, sort_key and sort_dir. sortable are
// the fields a list may be sorted by; "id" (Ironic's default, creation
// order) sorts by created_at.
func readListQuery(c *gin.Context, sortable []string) (listQuery, error) {
	q := listQuery{limit: transport.MaxLimit, marker: strings.ToLower(c.Query("marker")), sortKey: "created_at"}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return q, badRequest("Limit must be a non-negative integer, got %q.", l)
		}
		if n > 0 && n < q.limit {
			q.limit = n
		}
	}
	if k := c.Query("sort_key"); k != "" && k != "id" {
		if !slices.Contains(sortable, k) {
			return q, badRequest("The sort_key value %s is an invalid field for sorting", k)
		}
		q.sortKey = k
	}
	switch d := c.Query("sort_dir"); d {
	case "", "asc":
	case "desc":
		q.desc = true
	default:
		return q, badRequest("Invalid sort direction: %s. Acceptable values are 'asc' or 'desc'", d)
	}
	return q, nil
}

// page sorts docs (rendered records, with "uuid") by the query's key,
// then UUID, and returns the page after the marker and whether more
// follow it; notFound makes the error of a marker that names no record.
func (q listQuery) page(docs []map[string]any, notFound func(string) error) ([]map[string]any, bool, error) {
	key := func(d map[string]any) string {
		if v := d[q.sortKey]; v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	slices.SortStableFunc(docs, func(a, b map[string]any) int {
		r := cmp.Or(cmp.Compare(key(a), key(b)), cmp.Compare(fmt.Sprint(a["uuid"]), fmt.Sprint(b["uuid"])))
		if q.desc {
			return -r
		}
		return r
	})
	if q.marker != "" {
		i := slices.IndexFunc(docs, func(d map[string]any) bool { return d["uuid"] == q.marker })
		if i < 0 {
			return nil, false, notFound(q.marker)
		}
		docs = docs[i+1:]
	}
	if len(docs) > q.limit {
		return docs[:q.limit], true, nil
	}
	return docs, false, nil
}

// answerList answers a list of items named name, with the "next" link
// (and "<name>_links", which gophercloud reads) when more follow.
func (s *Server) answerList(c *gin.Context, name string, q listQuery, docs []map[string]any, more bool) {
	body := gin.H{name: docs}
	if more && len(docs) > 0 {
		next := nextURL(s.base(c), c.Request.URL, q.limit, fmt.Sprint(docs[len(docs)-1]["uuid"]))
		body["next"] = next
		body[name+"_links"] = []link{{Href: next, Rel: "next"}}
	}
	c.JSON(http.StatusOK, body)
}

// pickAll applies fields (when set) to every doc.
func pickAll(docs []map[string]any, fields string, v Version) ([]map[string]any, error) {
	if fields == "" {
		return docs, nil
	}
	out := make([]map[string]any, 0, len(docs))
	for _, d := range docs {
		p, err := pickFields(d, fields, v, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
