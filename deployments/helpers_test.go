package deployments

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/internal/wait"
)

// The addresses `make up` (local/fleet.sh) serves on.
const localAPI = "127.0.0.1:6385"

var localMetrics = []string{"127.0.0.1:9386", "127.0.0.1:9387"}

// redisAt connects to the redis-server answering on the unix socket sock,
// waiting for it to start; out is its output, shown if it never answers.
func redisAt(t *testing.T, sock string, out *bytes.Buffer) *redis.Client {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	t.Cleanup(func() { _ = rc.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		err := rc.Ping(ctx).Err()
		if err == nil {
			return rc
		}
		if wait.Sleep(ctx, 20*time.Millisecond) != nil {
			t.Fatalf("redis-server did not answer on %s: %v\n%s", sock, err, out)
		}
	}
}
