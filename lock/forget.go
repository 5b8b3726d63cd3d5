package lock

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/forget.lua
	luaForget string

	scriptForget = redis.NewScript(luaLib + luaForget)
)

// Forget deletes resource's keys if nobody holds its lock or waits for it,
// and reports whether it did (true also when there was nothing to delete).
// A held lock, a line or a handed-off or reserved ticket keep them: Forget
// then returns false and changes nothing.
//
// It is for resources that are gone for good (a deleted node): the owner
// hash, which otherwise lives as long as Redis keeps its data, goes with
// them, and with it the last fencing token; so do the spent tickets (a task
// delivered again finds its resource gone rather than its ticket spent). A later Acquire of the same
// name gets a token from the server clock alone (as after a restart that
// lost the data), so forget only a resource whose stores no longer keep a
// record fenced by its tokens. The resource's entry in the index behind
// Summary is pruned by the next Summary.
func (l *Locker) Forget(ctx context.Context, resource string) (bool, error) {
	if err := validResource(resource); err != nil {
		return false, err
	}
	r, err := l.run(ctx, scriptForget, l.keys(resource))
	if err != nil {
		return false, fmt.Errorf("lock: forget %s: %w", resource, err)
	}
	return r.status == stReleased, nil
}
