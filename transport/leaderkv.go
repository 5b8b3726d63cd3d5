package transport

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readFromLeader returns kv with its Get answered by its stream's leader.
//
// nats.go creates every bucket with AllowDirect, and a direct get is
// answered by whichever replica answers first, a follower included; and
// nats-server lets a follower answer direct gets once it is 90 % caught up
// (jetstream_cluster.go, monitorStream). So on a cluster a read right
// after an acknowledged write can return the record from before it: a
// conductor of make up's three-server fleet read a node from before the
// API's first move, took the task as no longer applying and dropped it,
// leaving the node in verifying, cleaning or deploying with no task
// (scripts/scaleout-bench.sh, 4 conductors). A read through the stream's
// API (STREAM.MSG.GET) is answered by the leader, which has stored every
// acknowledged write. The stream's config is left alone, so processes that
// still read directly (an earlier version, during a rolling upgrade) go on
// working. Watches, writes and the rest of kv are unchanged; a single
// server has no follower and keeps direct gets.
func readFromLeader(js jetstream.JetStream, kv jetstream.KeyValue) (jetstream.KeyValue, error) {
	legacy, err := js.Conn().JetStream()
	if err != nil {
		return nil, err
	}
	return &leaderKV{KeyValue: kv, js: legacy, stream: "KV_" + kv.Bucket(), subject: "$KV." + kv.Bucket() + "."}, nil
}

// leaderKV is a bucket whose Get reads from the stream's leader.
type leaderKV struct {
	jetstream.KeyValue
	// js is nats.go's older JetStream API, whose GetLastMsg goes through
	// the stream's API unless asked for a direct get.
	js      nats.JetStreamContext
	stream  string
	subject string
}

// kvOperation is the header a KV delete or purge marker carries.
const kvOperation = "KV-Operation"

// leaderReadTimeout bounds a leader read whose context has no deadline (a
// conductor's work under a node lock), as jetstream bounds its own API
// requests.
const leaderReadTimeout = 5 * time.Second

func (l *leaderKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, leaderReadTimeout)
		defer cancel()
	}
	m, err := l.js.GetLastMsg(l.stream, l.subject+key, nats.Context(ctx))
	if errors.Is(err, nats.ErrMsgNotFound) {
		return nil, jetstream.ErrKeyNotFound
	}
	if err != nil {
		return nil, err
	}
	// A delete or purge marker (or a server's marker) reads as no key, as
	// jetstream's own Get has it.
	if m.Header.Get(kvOperation) != "" || m.Header.Get(jetstream.MarkerReasonHeader) != "" {
		return nil, jetstream.ErrKeyNotFound
	}
	return &leaderEntry{bucket: l.Bucket(), key: key, value: m.Data, revision: m.Sequence, created: m.Time}, nil
}

// leaderEntry is one record read by leaderKV.Get.
type leaderEntry struct {
	bucket, key string
	value       []byte
	revision    uint64
	created     time.Time
}

func (e *leaderEntry) Bucket() string                  { return e.bucket }
func (e *leaderEntry) Key() string                     { return e.key }
func (e *leaderEntry) Value() []byte                   { return e.value }
func (e *leaderEntry) Revision() uint64                { return e.revision }
func (e *leaderEntry) Created() time.Time              { return e.created }
func (e *leaderEntry) Delta() uint64                   { return 0 }
func (e *leaderEntry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }
