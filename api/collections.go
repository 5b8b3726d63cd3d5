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

// listing is how a collection of records is listed, as Ironic's
// collection.list_convert_with_links does: the key of its items, the
// fields shown without detail, and its sort keys that are not sortable.
type listing struct {
	item   string   // "connectors"
	short  []string // the fields of an item without detail or fields
	noSort []string // fields Ironic refuses as sort_key (objects)
	// detailFrom is the version the detail query parameter came with
	// (utils.get_request_return_fields: 1.43), 0 for lists that always had
	// it (volume).
	detailFrom int
}

// page answers a list of records: docs are every matching record rendered
// in full (with "uuid" and "created_at"); the query's sort_key (default
// creation order, Ironic's "id"), sort_dir, marker, limit, fields and
// detail (those two exclusive) apply as they do on Ironic's lists. notFound
// is the resource's 404 for a marker that names none. detailRoute is true
// on a …/detail route, where every field is shown and detail is refused.
func (s *Server) page(c *gin.Context, l listing, docs []map[string]any, notFound func(id string) error, detailRoute bool) {
	v := version(c)
	limit, err := readLimit(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	detail, err := parseBool("detail", c.Query("detail"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if detail != nil && !v.AtLeast(l.detailFrom) {
		s.fail(c, badRequest("Invalid query parameter ?detail=%s received.", c.Query("detail")))
		return
	}
	if detailRoute {
		if detail != nil {
			s.fail(c, badRequest("The detail parameter is not valid on a /detail list."))
			return
		}
		detail = &detailRoute
	}
	fields := c.Query("fields")
	if fields != "" && detail != nil && *detail {
		s.fail(c, badRequest("Can't fetch a subset of fields with 'detail' set"))
		return
	}
	desc, err := readSortDir(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := sortDocs(docs, c.DefaultQuery("sort_key", "id"), l.noSort); err != nil {
		s.fail(c, err)
		return
	}
	if desc {
		slices.Reverse(docs)
	}
	if docs, err = afterMarker(docs, c.Query("marker"), notFound); err != nil {
		s.fail(c, err)
		return
	}
	docs = docs[:min(len(docs), limit)]
	out := make([]map[string]any, 0, len(docs))
	for _, d := range docs {
		switch {
		case fields != "":
			if d, err = pickFields(d, fields, v, nil); err != nil {
				s.fail(c, err)
				return
			}
		case detail == nil || !*detail:
			short := map[string]any{"links": d["links"]}
			for _, f := range l.short {
				short[f] = d[f]
			}
			d = short
		}
		out = append(out, d)
	}
	s.writeList(c, l.item, out, docs, limit)
}

// readLimit reads a list's limit: at most transport.MaxLimit, which is
// also what 0 or none means, as on Ironic's lists.
func readLimit(c *gin.Context) (int, error) {
	limit := transport.MaxLimit
	if q := c.Query("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 0 {
			return 0, badRequest("Limit must be a non-negative integer, got %q.", q)
		}
		if n > 0 && n < limit {
			limit = n
		}
	}
	return limit, nil
}

// readSortDir reads sort_dir: whether the list runs descending.
func readSortDir(c *gin.Context) (bool, error) {
	switch d := c.Query("sort_dir"); d {
	case "", "asc":
		return false, nil
	case "desc":
		return true, nil
	default:
		return false, badRequest("Invalid sort direction: %s. Acceptable values are 'asc' or 'desc'", d)
	}
}

// afterMarker returns the sorted docs after the one whose uuid is marker
// (any case), all of them without a marker; notFound makes the error of a
// marker that names none.
func afterMarker(docs []map[string]any, marker string, notFound func(id string) error) ([]map[string]any, error) {
	if marker == "" {
		return docs, nil
	}
	m := strings.ToLower(marker)
	i := slices.IndexFunc(docs, func(d map[string]any) bool { return d["uuid"] == m })
	if !isUUID(marker) || i < 0 {
		return nil, notFound(marker)
	}
	return docs[i+1:], nil
}

// writeList answers a page of items under key item: out, the page's
// records as shown (fields, or the short view, may leave out their uuid),
// rendered from page, the records in full. The "next" link (and
// "<item>_links", which gophercloud reads) is there when the page is full,
// as Ironic's collection.has_next: a client pages on until a page comes
// back short.
func (s *Server) writeList(c *gin.Context, item string, out, page []map[string]any, limit int) {
	body := gin.H{item: out}
	if len(page) == limit && limit > 0 {
		next := nextURL(s.base(c), c.Request.URL, limit, fmt.Sprint(page[len(page)-1]["uuid"]))
		body["next"] = next
		body[item+"_links"] = []link{{Href: next, Rel: "next"}}
	}
	c.JSON(http.StatusOK, body)
}

// sortDocs sorts rendered records by key, stably, ties in creation order;
// "id" is creation order itself. A key the records lack or that holds an
// object is refused, as Ironic refuses unknown and unsortable keys.
func sortDocs(docs []map[string]any, key string, noSort []string) error {
	byCreation := func(a, b map[string]any) int {
		return cmp.Or(cmp.Compare(fmt.Sprint(a["created_at"]), fmt.Sprint(b["created_at"])),
			cmp.Compare(fmt.Sprint(a["uuid"]), fmt.Sprint(b["uuid"])))
	}
	slices.SortStableFunc(docs, byCreation)
	if key == "id" {
		return nil
	}
	if slices.Contains(noSort, key) || key == "links" {
		return badRequest("The sort_key value %s is an invalid field for sorting", key)
	}
	for _, d := range docs {
		if _, ok := d[key]; !ok {
			return badRequest("The sort_key value %s is an invalid field for sorting", key)
		}
	}
	slices.SortStableFunc(docs, func(a, b map[string]any) int {
		x, y := a[key], b[key]
		switch {
		case x == nil && y == nil:
			return 0
		case x == nil:
			return -1
		case y == nil:
			return 1
		}
		xf, xok := x.(float64)
		yf, yok := y.(float64)
		if xi, ok := x.(int); ok {
			xf, xok = float64(xi), true
		}
		if yi, ok := y.(int); ok {
			yf, yok = float64(yi), true
		}
		if xok && yok {
			return cmp.Compare(xf, yf)
		}
		return cmp.Compare(fmt.Sprint(x), fmt.Sprint(y))
	})
	return nil
}
