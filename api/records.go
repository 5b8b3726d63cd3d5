package api

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/gin-gonic/gin"
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

// readListQuery reads limit, marker, sort_key and sort_dir as every list
// does (readLimit, readSortDir). sortable are the fields a records list may
// be sorted by; "id" (Ironic's default, creation order) sorts by
// created_at.
func readListQuery(c *gin.Context, sortable []string) (listQuery, error) {
	q := listQuery{marker: c.Query("marker"), sortKey: "created_at"}
	var err error
	if q.limit, err = readLimit(c); err != nil {
		return q, err
	}
	if k := c.Query("sort_key"); k != "" && k != "id" {
		if !slices.Contains(sortable, k) {
			return q, badRequest("The sort_key value %s is an invalid field for sorting", k)
		}
		q.sortKey = k
	}
	q.desc, err = readSortDir(c)
	return q, err
}

// page sorts docs (rendered records, with "uuid") by the query's key,
// then UUID, and returns the page after the marker (afterMarker).
func (q listQuery) page(docs []map[string]any, notFound func(string) error) ([]map[string]any, error) {
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
	docs, err := afterMarker(docs, q.marker, notFound)
	if err != nil {
		return nil, err
	}
	return docs[:min(len(docs), q.limit)], nil
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
