package lock

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/lib.lua
	luaLib string
	//go:embed lua/acquire.lua
	luaAcquire string
	//go:embed lua/release.lua
	luaRelease string
	//go:embed lua/handoff.lua
	luaHandoff string
	//go:embed lua/refresh.lua
	luaRefresh string
	//go:embed lua/leave.lua
	luaLeave string
	//go:embed lua/reserve.lua
	luaReserve string
	//go:embed lua/snapshot.lua
	luaSnapshot string

	scriptAcquire  = redis.NewScript(luaLib + luaAcquire)
	scriptRelease  = redis.NewScript(luaLib + luaRelease)
	scriptHandoff  = redis.NewScript(luaLib + luaHandoff)
	scriptRefresh  = redis.NewScript(luaLib + luaRefresh)
	scriptLeave    = redis.NewScript(luaLib + luaLeave)
	scriptReserve  = redis.NewScript(luaLib + luaReserve)
	scriptSnapshot = redis.NewScript(luaLib + luaSnapshot)
)

// Script statuses, the first element of every script's reply.
const (
	stGranted   = 1
	stQueued    = 2
	stLocked    = 3
	stDuplicate = 4
	stNotHeld   = 5
	stReleased  = 6
	stUsed      = 7
)

// reply is the common shape of the mutating scripts' replies.
type reply struct {
	status      int64
	value       int64 // token or position
	holder      string
	purpose     string
	ownerLeftMS int64
	expWaiters  int64
	expHolders  int64
	expTickets  int64
	extra       int64
}

func parseReply(v any) (reply, error) {
	a, ok := v.([]any)
	if !ok || len(a) != 9 {
		return reply{}, fmt.Errorf("lock: unexpected script reply %v", v)
	}
	i := func(k int) int64 { n, _ := a[k].(int64); return n }
	s := func(k int) string { x, _ := a[k].(string); return x }
	return reply{
		status: i(0), value: i(1), holder: s(2), purpose: s(3), ownerLeftMS: i(4),
		expWaiters: i(5), expHolders: i(6), expTickets: i(7), extra: i(8),
	}, nil
}

// run executes a script by EVALSHA, loading it again when Redis answers
// NOSCRIPT (after SCRIPT FLUSH or a restart), and records expiries it saw.
func (l *Locker) run(ctx context.Context, s *redis.Script, keys []string, args ...any) (reply, error) {
	v, err := s.EvalSha(ctx, l.client, keys, args...).Result()
	if err != nil && isNoScript(err) {
		v, err = s.Eval(ctx, l.client, keys, args...).Result()
	}
	if err != nil {
		return reply{}, err
	}
	r, err := parseReply(v)
	if err != nil {
		return r, err
	}
	l.metrics.observeExpiries(r)
	return r, nil
}

func isNoScript(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "NOSCRIPT")
}
