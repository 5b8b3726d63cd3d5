package lock

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Snapshot is what one resource's lock looks like at one instant, by the
// Redis server's clock. Tickets are not shown: a ticket is what lets a task
// claim a handed-off lock.
type Snapshot struct {
	Resource string `json:"resource"`
	// Held is false when nobody owns the lock.
	Held    bool   `json:"held"`
	Holder  string `json:"holder,omitempty"`
	Purpose string `json:"purpose,omitempty"`
	// Mode is how the owner got the lock: standard, patient, handoff or reserve.
	Mode string `json:"mode,omitempty"`
	// Claimed is false while a handed-off or reserved ticket waits for the
	// task that will claim it.
	Claimed bool      `json:"claimed,omitempty"`
	Token   uint64    `json:"token,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	Expires time.Time `json:"expires,omitzero"`
	// Line is the waiters, first in line first.
	Line []Waiter `json:"line"`
	// At is the server time of the snapshot.
	At time.Time `json:"at"`
}

// Waiter is one place in a resource's line.
type Waiter struct {
	Holder   string        `json:"holder,omitempty"`
	Purpose  string        `json:"purpose,omitempty"`
	Mode     string        `json:"mode,omitempty"`
	Reserved bool          `json:"reserved,omitempty"`
	Since    time.Time     `json:"since"`
	Waited   time.Duration `json:"waited_ns"`
}

// LongestWait is how long the first waiter has been in line.
func (s Snapshot) LongestWait() time.Duration {
	if len(s.Line) == 0 {
		return 0
	}
	return s.Line[0].Waited
}

// Empty reports that nobody holds or waits for the resource.
func (s Snapshot) Empty() bool { return !s.Held && len(s.Line) == 0 }

// Snapshot reads one resource's lock: holder, purpose, since when, and the
// line with each waiter's wait so far.
func (l *Locker) Snapshot(ctx context.Context, resource string) (Snapshot, error) {
	if err := validResource(resource); err != nil {
		return Snapshot{}, err
	}
	v, err := runScript(ctx, l.client, scriptSnapshot, l.keys(resource))
	if err != nil {
		return Snapshot{}, fmt.Errorf("lock: snapshot %s: %w", resource, err)
	}
	return parseSnapshot(resource, v)
}

// Snapshots reads the locks of several resources in one round trip (a
// pipeline of Snapshot's script), in the order given: for a reader that has
// many resources to show at once, or has gathered the reads of concurrent
// requests into one batch.
func (l *Locker) Snapshots(ctx context.Context, resources []string) ([]Snapshot, error) {
	for _, r := range resources {
		if err := validResource(r); err != nil {
			return nil, err
		}
	}
	pipe := l.client.Pipeline()
	cmds := make([]*redis.Cmd, len(resources))
	for i, r := range resources {
		cmds[i] = scriptSnapshot.EvalSha(ctx, pipe, l.keys(r))
	}
	_, _ = pipe.Exec(ctx) // each command's own error is read below
	out := make([]Snapshot, len(resources))
	for i, r := range resources {
		v, err := cmds[i].Result()
		if err != nil && isNoScript(err) {
			v, err = scriptSnapshot.Eval(ctx, l.client, l.keys(r)).Result()
		}
		if err != nil {
			return nil, fmt.Errorf("lock: snapshot %s: %w", r, err)
		}
		if out[i], err = parseSnapshot(r, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Summary reads every resource that has a holder or waiters, with the
// longest lines first (then the longest waits). It reads an index kept by
// Acquire, Reserve and Handoff — no SCAN — and prunes resources found idle.
func (l *Locker) Summary(ctx context.Context) ([]Snapshot, error) {
	idx, err := l.client.ZRangeWithScores(ctx, l.indexKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("lock: summary: %w", err)
	}
	pipe := l.client.Pipeline()
	cmds := make([]*redis.Cmd, len(idx))
	for i, z := range idx {
		cmds[i] = scriptSnapshot.EvalSha(ctx, pipe, l.keys(z.Member.(string)))
	}
	_, _ = pipe.Exec(ctx)
	out := make([]Snapshot, 0, len(idx))
	for i, z := range idx {
		resource := z.Member.(string)
		v, err := cmds[i].Result()
		if err != nil && isNoScript(err) {
			v, err = scriptSnapshot.Eval(ctx, l.client, l.keys(resource)).Result()
		}
		if err != nil {
			return nil, fmt.Errorf("lock: summary: snapshot %s: %w", resource, err)
		}
		s, err := parseSnapshot(resource, v)
		if err != nil {
			return nil, err
		}
		if s.Empty() {
			// Remove it unless it was touched since we read the index.
			if err := scriptPrune.Run(ctx, l.client, []string{l.indexKey()}, resource, strconv.FormatFloat(z.Score, 'f', -1, 64)).Err(); err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("lock: summary: prune %s: %w", resource, err)
			}
			continue
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Snapshot) int {
		return cmp.Or(
			cmp.Compare(len(b.Line), len(a.Line)),
			cmp.Compare(b.LongestWait(), a.LongestWait()),
			cmp.Compare(a.Resource, b.Resource),
		)
	})
	return out, nil
}

// scriptPrune removes an idle resource from the index only if its score is
// unchanged: an Acquire that raced the summary bumped it.
var scriptPrune = redis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0`)

func runScript(ctx context.Context, c redis.Scripter, s *redis.Script, keys []string, args ...any) (any, error) {
	v, err := s.EvalSha(ctx, c, keys, args...).Result()
	if err != nil && isNoScript(err) {
		v, err = s.Eval(ctx, c, keys, args...).Result()
	}
	return v, err
}

type waiterInfo struct {
	Holder  string `json:"h"`
	Purpose string `json:"p"`
	Joined  int64  `json:"j"`
	Claimer string `json:"c"`
	Mode    string `json:"m"`
	Res     int    `json:"r"`
}

func parseSnapshot(resource string, v any) (Snapshot, error) {
	a, ok := v.([]any)
	if !ok || len(a) < 9 || (len(a)-9)%3 != 0 {
		return Snapshot{}, fmt.Errorf("lock: snapshot %s: unexpected reply %v", resource, v)
	}
	str := func(i int) string { s, _ := a[i].(string); return s }
	num := func(i int) int64 { n, _ := strconv.ParseInt(str(i), 10, 64); return n }
	now, _ := a[0].(int64)
	s := Snapshot{Resource: resource, At: time.UnixMilli(now), Line: []Waiter{}}
	if str(1) != "" && num(5) > now {
		s.Held = true
		s.Claimed = str(2) != ""
		s.Token = uint64(num(3)) //nolint:gosec // tokens are positive
		s.Since = time.UnixMilli(num(4))
		s.Expires = time.UnixMilli(num(5))
		s.Holder, s.Purpose, s.Mode = str(6), str(7), str(8)
	}
	for i := 9; i < len(a); i += 3 {
		lease, _ := strconv.ParseFloat(str(i+2), 64)
		if int64(lease) <= now {
			continue // dead, not evicted yet
		}
		var info waiterInfo
		_ = json.Unmarshal([]byte(str(i+1)), &info)
		s.Line = append(s.Line, Waiter{
			Holder: info.Holder, Purpose: info.Purpose, Mode: info.Mode,
			Reserved: info.Res == 1 && info.Claimer == "",
			Since:    time.UnixMilli(info.Joined),
			Waited:   time.Duration(now-info.Joined) * time.Millisecond,
		})
	}
	return s, nil
}
