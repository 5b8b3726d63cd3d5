package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// ConductorsBucket is the KV bucket of the conductor registry, keyed by host.
const ConductorsBucket = "ifl_conductors"

// RegistryConfig configures the conductor registry. Every zero value means
// the documented default (Ironic's where it has one).
type RegistryConfig struct {
	// KeepAlive is how often a registered conductor rewrites its record; 0 means 10s.
	KeepAlive time.Duration
	// OfflineAfter is how long after its last keepalive a conductor counts
	// as offline; 0 means 60s. It must exceed KeepAlive.
	OfflineAfter time.Duration
	// Forget is the bucket's TTL: records of conductors gone for this long
	// are removed by JetStream; 0 means 24h.
	Forget time.Duration
	// Replicas of the bucket; 0 means DefaultReplicas.
	Replicas int
	// Logger receives failed keepalives; nil means none.
	Logger *slog.Logger
}

// ConductorInfo is a conductor's registry record.
type ConductorInfo struct {
	// Host names the conductor: letters, digits, '.', '-', '_'.
	Host      string    `json:"host"`
	Groups    []string  `json:"groups"`
	Drivers   []string  `json:"drivers,omitempty"`
	StartedAt time.Time `json:"started_at"`
	// LastSeen is the time of the last keepalive; set by Register.
	LastSeen time.Time `json:"last_seen"`
	// Alive is whether LastSeen is within OfflineAfter; computed by
	// Conductors, not stored.
	Alive bool `json:"-"`
}

// Registry is the conductor registry: TTL'd keepalive records in a KV bucket.
type Registry struct {
	kv  jetstream.KeyValue
	cfg RegistryConfig
	log *slog.Logger
	now func() time.Time
}

var hostRe = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// NewRegistry creates or updates the registry bucket.
func NewRegistry(ctx context.Context, js jetstream.JetStream, cfg RegistryConfig) (*Registry, error) {
	if js == nil {
		return nil, errors.New("transport: NewRegistry: nil JetStream")
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 10 * time.Second
	}
	if cfg.OfflineAfter <= 0 {
		cfg.OfflineAfter = 60 * time.Second
	}
	if cfg.Forget <= 0 {
		cfg.Forget = 24 * time.Hour
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = DefaultReplicas
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OfflineAfter <= cfg.KeepAlive {
		return nil, fmt.Errorf("transport: RegistryConfig.OfflineAfter %s must exceed KeepAlive %s", cfg.OfflineAfter, cfg.KeepAlive)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      ConductorsBucket,
		Description: "ironfleet conductors: keepalive records",
		TTL:         cfg.Forget,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("transport: ensure bucket %s: %w", ConductorsBucket, err)
	}
	// Replicated, its reads go to the leader, as the inventory's do: a
	// follower's answer may be older than a keepalive it acknowledged, and
	// the consoles' reconciliation takes a conductor it reads as offline
	// for gone.
	if cfg.Replicas > 1 {
		if kv, err = readFromLeader(js, kv); err != nil {
			return nil, fmt.Errorf("transport: ensure bucket %s: %w", ConductorsBucket, err)
		}
	}
	return &Registry{kv: kv, cfg: cfg, log: cfg.Logger, now: time.Now}, nil
}

// Register writes info and rewrites it every KeepAlive until ctx ends, then
// deletes it (a clean leave) and returns nil. It fails at once when the
// first write fails; later failed keepalives are logged and retried at the
// next tick, so a NATS restart does not end the registration.
func (r *Registry) Register(ctx context.Context, info ConductorInfo) error {
	if !hostRe.MatchString(info.Host) || len(info.Host) > 253 {
		return wire.Errorf(wire.CodeInvalidInput, "%w: conductor host %q: want letters, digits, '.', '-', '_'", ErrInvalid, info.Host)
	}
	for i, g := range info.Groups {
		if _, err := groupToken(g); err != nil {
			return fmt.Errorf("conductor %s group %d: %w", info.Host, i, err)
		}
	}
	if info.StartedAt.IsZero() {
		info.StartedAt = r.now().UTC()
	}
	if err := r.put(ctx, info); err != nil {
		return err
	}
	tick := time.NewTicker(r.cfg.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := r.kv.Delete(dctx, info.Host); err != nil {
				r.log.Warn("conductor deregistration failed; it will show offline", "host", info.Host, "err", err)
			}
			return nil
		case <-tick.C:
			if err := r.put(ctx, info); err != nil && ctx.Err() == nil {
				r.log.Warn("conductor keepalive failed", "host", info.Host, "err", err)
			}
		}
	}
}

func (r *Registry) put(ctx context.Context, info ConductorInfo) error {
	info.LastSeen = r.now().UTC()
	data, err := json.Marshal(info)
	if err != nil {
		return wire.Errorf(wire.CodeInvalidInput, "%w: conductor %s: %w", ErrInvalid, info.Host, err)
	}
	if _, err := r.kv.Put(ctx, info.Host, data); err != nil {
		return kvErr("register conductor "+info.Host, err)
	}
	return nil
}

// Conductors lists the registered conductors by host, each with Alive set.
func (r *Registry) Conductors(ctx context.Context) ([]ConductorInfo, error) {
	lister, err := r.kv.ListKeys(ctx)
	if err != nil {
		return nil, kvErr("list conductors", err)
	}
	defer func() { _ = lister.Stop() }()
	var out []ConductorInfo
	now := r.now()
	for key := range lister.Keys() {
		e, err := r.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return nil, kvErr("get conductor "+key, err)
		}
		var c ConductorInfo
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			r.log.Warn("skipping undecodable conductor record", "host", key, "err", err)
			continue
		}
		c.Alive = now.Sub(c.LastSeen) < r.cfg.OfflineAfter
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b ConductorInfo) int { return strings.Compare(a.Host, b.Host) })
	return out, nil
}
