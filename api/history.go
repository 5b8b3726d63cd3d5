package api

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// Node history (1.78), as Ironic's NodeHistoryController serves it
// (ironic/api/controllers/v1/node.py): a list of a node's events, oldest
// first by default, with uuid, created_at, severity and event (cut to 255
// characters) unless detail=true, which adds event_type, conductor and
// user; one event in full by its UUID. The fields Ironic adds at 1.113
// (project) and 1.115 (state, target_provision_state, duration_seconds)
// are beyond ironfleet's maximum version and not rendered.

func historyNotFound(id string) error {
	return wire.Errorf(wire.CodeNotFound, "Node history record %s could not be found.", id)
}

// renderHistoryEvent renders one event of node's history.
func renderHistoryEvent(node string, ev wire.HistoryEvent, detail bool, base string) map[string]any {
	out := map[string]any{
		"uuid": ev.UUID, "created_at": ironicTime(ev.CreatedAt), "severity": ev.Severity, "event": ev.Event,
		"links": []link{{Href: base + "/v1/nodes/" + node + "/history/" + ev.UUID, Rel: "self"}},
	}
	if !detail {
		if len(ev.Event) > 255 {
			out["event"] = ev.Event[:251] + "..."
		}
		return out
	}
	out["event_type"], out["conductor"], out["user"] = ev.EventType, nullable(ev.Conductor), nullable(ev.User)
	return out
}

// nodeHistory reads the path's node and its history (empty when none).
func (s *Server) nodeHistory(c *gin.Context) (wire.Node, wire.NodeHistory, error) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		return n, wire.NodeHistory{}, err
	}
	h, err := s.deps.Records.History.Get(c.Request.Context(), n.UUID)
	if wire.CodeOf(err) == wire.CodeNotFound {
		return n, wire.NodeHistory{Node: n.UUID}, nil
	}
	return n, h, err
}

func (s *Server) listHistory(c *gin.Context) {
	detail, err := parseBool("detail", c.Query("detail"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.historyList(c, detail != nil && *detail)
}

// listHistoryDetail is the list with every event in full.
func (s *Server) listHistoryDetail(c *gin.Context) { s.historyList(c, true) }

// historyList answers a node's history, every event in full or cut.
func (s *Server) historyList(c *gin.Context, full bool) {
	q, err := readListQuery(c, []string{"created_at", "uuid", "severity", "event_type", "event", "conductor", "user"})
	if err != nil {
		s.fail(c, err)
		return
	}
	n, h, err := s.nodeHistory(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	base := s.base(c)
	docs := make([]map[string]any, 0, len(h.Events))
	for _, ev := range h.Events {
		docs = append(docs, renderHistoryEvent(n.UUID, ev, true, base))
	}
	page, err := q.page(docs, historyNotFound)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := page
	if !full {
		byID := make(map[any]wire.HistoryEvent, len(h.Events))
		for _, ev := range h.Events {
			byID[ev.UUID] = ev
		}
		out = make([]map[string]any, len(page))
		for i, d := range page {
			out[i] = renderHistoryEvent(n.UUID, byID[d["uuid"]], false, base)
		}
	}
	s.writeList(c, "history", out, page, q.limit)
}

func (s *Server) getHistoryEvent(c *gin.Context) {
	n, h, err := s.nodeHistory(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	id := strings.ToLower(c.Param("event"))
	if id == "detail" {
		// python-ironicclient's history list --long asks for
		// …/history/detail (ironicclient/v1/node.py get_history_list);
		// no event has that UUID.
		s.listHistoryDetail(c)
		return
	}
	for _, ev := range h.Events {
		if ev.UUID == id {
			c.JSON(http.StatusOK, renderHistoryEvent(n.UUID, ev, true, s.base(c)))
			return
		}
	}
	s.fail(c, historyNotFound(id))
}
