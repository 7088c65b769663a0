package config

import (
	"math"
	"testing"
)

// TestCheckTags: the rules read from the struct tags, with the messages
// they give, and how they combine with Validate's own checks.
func TestCheckTags(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		// NaN is in no range: it must not slip past min and max.
		{"NaN", func(c *Config) { c.Log.Audit.AllowSampleRate = math.NaN() },
			"log.audit.allow_sample_rate: must be between 0 and 1"},
		{"one past max", func(c *Config) { c.MCP.MaxBodyBytes = 1<<20 + 1 },
			"mcp.max_body_bytes: must be between 1 and 1048576 (1 MiB)"},
		{"min only", func(c *Config) { c.Cache.MaxEntries = 0 }, "cache.max_entries: must be greater than 0"},
		{"enum", func(c *Config) { c.Resources[0].Preflight = "" }, `resources[0].preflight: must be "answer" or "forward"`},
		{"item enum", func(c *Config) { c.Tokens.Algorithms = []string{"RS256", "RS1"} },
			`tokens.algorithms[1]: "RS1" is not supported (use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)`},
		{"unique", func(c *Config) { c.Tokens.Algorithms = []string{"ES256", "RS256", "ES256"} },
			`tokens.algorithms[2]: "ES256" is already listed at tokens.algorithms[0]`},
		{"item minLength and unique", func(c *Config) {
			c.Resources[0].AuthorizationServers[0].KeepClaims = []string{"roles", "", "roles"}
		}, "resources[0].authorization_servers[0].keep_claims[1]: must not be empty\n" +
			`resources[0].authorization_servers[0].keep_claims[2]: "roles" is already listed at resources[0].authorization_servers[0].keep_claims[0]`},
		{"required", func(c *Config) { c.Resources[0].Name = "" }, "resources[0].name: required"},
		// Validate's own message about a key replaces the generic one.
		{"own message first", func(c *Config) { c.Tokens.Algorithms = []string{"HS256"} },
			`tokens.algorithms[0]: "HS256" is never accepted (symmetric algorithms are not allowed)`},
		{"own message, rule method", func(c *Config) { c.Resources[0].Rules = []Rule{{Policy: "true"}} },
			`resources[0].rules[0].method: must not be empty (omit it, or write "*", for any method)`},
		// Without a Redis, the cache.redis keys are not checked against
		// their tags: Validate refuses them as set without a Redis.
		{"no redis", func(c *Config) { c.Cache.Redis.DB = -1 },
			"cache.redis.db: " + msgNoRedis},
		// Tag problems and Validate's own come out in struct order.
		{"struct order", func(c *Config) {
			c.Log.Level = "loud"
			c.Cache.MaxTTL = 0
			c.GRPC.StreamWorkers = -1
		}, "cache.max_ttl: must be greater than 0\n" +
			"grpc.stream_workers: must be between 0 and 65536\n" +
			`log.level: must be "debug", "info", "warn" or "error"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultsWith(mcpResource())
			tt.modify(c)
			got := ""
			if err := c.Validate(); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
