package fleet

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseSentinelURL(t *testing.T) {
	tests := []struct {
		name, url          string
		master             string
		addrs              []string
		db                 int
		user, pass         string
		sentUser, sentPass string
		tls                bool
		dialTimeout        time.Duration
	}{
		{name: "one Sentinel, default port", url: "redis+sentinel://10.0.0.1/locks",
			master: "locks", addrs: []string{"10.0.0.1:26379"}},
		{name: "three Sentinels and a database", url: "redis+sentinel://s1:26379,s2:26380,s3/locks/2",
			master: "locks", addrs: []string{"s1:26379", "s2:26380", "s3:26379"}, db: 2},
		{name: "IPv6", url: "redis+sentinel://[::1]:26379,[::1]/locks",
			master: "locks", addrs: []string{"[::1]:26379", "[::1]:26379"}},
		{name: "server and Sentinel credentials, go-redis options", url: "redis+sentinel://app:s%40cret@s1/locks/?sentinel_username=sen&sentinel_password=pw&dial_timeout=3s",
			master: "locks", addrs: []string{"s1:26379"}, user: "app", pass: "s@cret", sentUser: "sen", sentPass: "pw", dialTimeout: 3 * time.Second},
		{name: "password only", url: "redis+sentinel://:pw@s1/locks",
			master: "locks", addrs: []string{"s1:26379"}, pass: "pw"},
		{name: "TLS", url: "rediss+sentinel://s1:26379,s2:26379/locks",
			master: "locks", addrs: []string{"s1:26379", "s2:26379"}, tls: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseSentinelURL(tt.url)
			if err != nil {
				t.Fatalf("parseSentinelURL(%q): %v", tt.url, err)
			}
			if o.MasterName != tt.master || !slices.Equal(o.SentinelAddrs, tt.addrs) || o.DB != tt.db {
				t.Errorf("master %q, Sentinels %v, db %d; want %q, %v, %d", o.MasterName, o.SentinelAddrs, o.DB, tt.master, tt.addrs, tt.db)
			}
			if o.Username != tt.user || o.Password != tt.pass || o.SentinelUsername != tt.sentUser || o.SentinelPassword != tt.sentPass {
				t.Errorf("credentials %q:%q, Sentinel %q:%q; want %q:%q, %q:%q", o.Username, o.Password,
					o.SentinelUsername, o.SentinelPassword, tt.user, tt.pass, tt.sentUser, tt.sentPass)
			}
			if got := o.TLSConfig != nil; got != tt.tls {
				t.Errorf("TLS %v, want %v", got, tt.tls)
			}
			if tt.tls && o.TLSConfig.ServerName != "" {
				t.Errorf("TLS ServerName %q, want empty (each host's own)", o.TLSConfig.ServerName)
			}
			if o.DialTimeout != tt.dialTimeout {
				t.Errorf("DialTimeout %s, want %s", o.DialTimeout, tt.dialTimeout)
			}
		})
	}
}

func TestRedisClientsRejects(t *testing.T) {
	for url, want := range map[string]string{
		"redis+sentinel://s1":                       "want /master",
		"redis+sentinel://s1/":                      "want /master",
		"redis+sentinel://s1/locks/x":               "database number",
		"redis+sentinel://s1/locks/0/more":          "want /master",
		"redis+sentinel://s1,,s2/locks":             "empty sentinel address",
		"redis+sentinel://s1:0/locks":               "want host[:port]",
		"redis+sentinel://s1/locks?master_name=x":   "option master_name",
		"redis+sentinel://s1/locks?addr=s2:26379":   "option addr",
		"redis+sentinel://s1/locks?password=x":      "option password",
		"redis+sentinel://s1/locks?no_such_thing=1": "unexpected option",
		"sentinel://s1/locks":                       "invalid URL scheme",
	} {
		if _, err := RedisClients(url); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("RedisClients(%q) = %v, want an error saying %q", url, err, want)
		}
	}
}
