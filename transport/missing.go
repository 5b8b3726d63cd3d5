package transport

import (
	"bytes"
	"context"
	"time"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// DefaultConfirmMissingTimeout bounds how long a node the store answered
// as missing is checked against the cache (InventoryConfig.ConfirmMissingTimeout).
const DefaultConfirmMissingTimeout = 5 * time.Second

// confirmMissing is asked when the nodes bucket answered a read of uuid
// with "no such key". That answer is not proof: a JetStream direct get
// answers "404 Message Not Found" for any failure to load the message, not
// only for an absent key (nats-server server/stream.go, getDirectRequest:
// an error from the store's LoadLastMsg, such as a block file it cannot
// open when the process is out of file descriptors, is sent as 404). So
// the watch-fed cache is brought up to the bucket's last revision, which
// the server keeps in memory, and asked: a node it then holds exists, and
// confirmMissing returns it with ok true; a node it does not hold is
// missing, and confirmMissing returns ErrNotFound. When the cache cannot
// catch up in time the answer is unknown: CodeUnavailable, never a 404.
func (inv *Inventory) confirmMissing(ctx context.Context, uuid string) (wire.Node, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, inv.cfg.ConfirmMissingTimeout)
	defer cancel()
	seq, err := bucketLastSeq(ctx, inv.nodes)
	if err != nil {
		return wire.Node{}, false, kvErr("confirm node "+uuid+" is missing", err)
	}
	if err := inv.cache.waitRev(ctx, NodesBucket, seq); err != nil {
		return wire.Node{}, false, err
	}
	if n, ok := inv.Node(uuid); ok {
		return n, true, nil
	}
	return wire.Node{}, false, notFound("node", uuid)
}

// landed reports whether a write of data over revision rev of key that
// failed without an answer (its acknowledgement lost or late: a timeout, a
// slow-consumer connection dropping it) was stored all the same: the key's
// next revision holds exactly data. A caller told "failed" would otherwise
// undo nothing and report an error for a write that took effect — a node
// left in the state a first move wrote, its task never published. The
// check runs on a context of its own, since the caller's may be what ended.
func (inv *Inventory) landed(ctx context.Context, key string, rev uint64, data []byte) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), inv.cfg.ConfirmMissingTimeout)
	defer cancel()
	e, err := inv.nodes.Get(ctx, key)
	return err == nil && e.Revision() > rev && bytes.Equal(e.Value(), data)
}
