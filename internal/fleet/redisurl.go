package fleet

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// DefaultSentinelPort is the port of a Sentinel address given without one.
const DefaultSentinelPort = "26379"

// RedisClients parses url, the --redis flag, and returns a constructor of
// clients of that Redis, each with its own connection pool, set up as the
// lock needs (context deadlines honoured). The forms:
//
//	redis://[[user]:password@]host[:port][/db][?option=value…]   one server
//	rediss://…                                                   the same over TLS
//	unix://[[user]:password@]/path/to/socket[?db=N]
//	redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/master[/db][?option=value…]
//	rediss+sentinel://…                                          the same over TLS
//
// A redis+sentinel URL lists Sentinels (port 26379 when left out) and names
// the master they watch; the client asks them where the master is, and
// again after they fail it over. Its user and password are the Redis
// servers' (as in redis://); sentinel_username and sentinel_password
// options authenticate to Sentinels that require it. Other options are
// go-redis's, spelled in snake case (dial_timeout=3s, pool_size=20, …).
func RedisClients(url string) (func() *redis.Client, error) {
	scheme, _, _ := strings.Cut(url, "://")
	if scheme == "redis+sentinel" || scheme == "rediss+sentinel" {
		opts, err := parseSentinelURL(url)
		if err != nil {
			return nil, fmt.Errorf("redis URL %q: %w", url, err)
		}
		opts.ContextTimeoutEnabled = true
		return func() *redis.Client { return redis.NewFailoverClient(opts) }, nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis URL %q: %w", url, err)
	}
	opts.ContextTimeoutEnabled = true
	return func() *redis.Client { return redis.NewClient(opts) }, nil
}

// parseSentinelURL turns a redis+sentinel URL into go-redis failover
// options, through go-redis's own failover URL form (Sentinels as host and
// addr options, the master as master_name), so that every option go-redis
// knows is taken.
func parseSentinelURL(raw string) (*redis.FailoverOptions, error) {
	// net/url takes one host: take the list out, parse the rest.
	scheme, rest, _ := strings.Cut(raw, "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@") + 1
	hosts := rest[at:end]
	u, err := url.Parse(scheme + "://" + rest[:at] + "sentinels" + rest[end:])
	if err != nil {
		return nil, err
	}
	var addrs []string
	for h := range strings.SplitSeq(hosts, ",") {
		a, err := sentinelAddr(h)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, a)
	}
	path := strings.Split(strings.Trim(u.Path, "/"), "/")
	if path[0] == "" || len(path) > 2 {
		return nil, fmt.Errorf("path %q: want /master or /master/db", u.Path)
	}
	db := "0"
	if len(path) == 2 {
		if _, err := strconv.Atoi(path[1]); err != nil {
			return nil, fmt.Errorf("database number %q: %w", path[1], err)
		}
		db = path[1]
	}
	q := u.Query()
	for _, k := range []string{"master_name", "addr", "username", "password", "db"} {
		if q.Has(k) {
			return nil, fmt.Errorf("option %s: say it in the URL's hosts, path or user instead", k)
		}
	}
	var sentinelUser *url.Userinfo
	if q.Has("sentinel_password") {
		sentinelUser = url.UserPassword(q.Get("sentinel_username"), q.Get("sentinel_password"))
	} else if q.Has("sentinel_username") {
		sentinelUser = url.User(q.Get("sentinel_username"))
	}
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	if u.User != nil {
		q.Set("username", u.User.Username())
		if p, ok := u.User.Password(); ok {
			q.Set("password", p)
		}
	}
	q.Set("master_name", path[0])
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	goRedis := url.URL{
		Scheme: strings.TrimSuffix(u.Scheme, "+sentinel"), User: sentinelUser,
		Host: addrs[0], Path: "/" + db, RawQuery: q.Encode(),
	}
	opts, err := redis.ParseFailoverURL(goRedis.String())
	if err != nil {
		return nil, err
	}
	if opts.TLSConfig != nil {
		// go-redis names the first Sentinel; left empty, each connection
		// verifies the name of the host it dials.
		opts.TLSConfig.ServerName = ""
	}
	return opts, nil
}

// sentinelAddr is h as host:port, with DefaultSentinelPort when h has none.
func sentinelAddr(h string) (string, error) {
	if h == "" {
		return "", errors.New("empty sentinel address")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// No port: a bare host, or a bracketed IPv6 address.
		host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), DefaultSentinelPort
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 || host == "" {
		return "", fmt.Errorf("sentinel address %q: want host[:port]", h)
	}
	return net.JoinHostPort(host, port), nil
}
