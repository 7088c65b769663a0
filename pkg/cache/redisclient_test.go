package cache_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/pkg/cache"
)

func TestNewRedisClientRejects(t *testing.T) {
	tests := []struct {
		name string
		o    cache.RedisClientOptions
		want string // in the error
	}{
		{"no mode", cache.RedisClientOptions{}, "no mode chosen"},
		{"url and cluster", cache.RedisClientOptions{URL: "redis://r:6379", ClusterAddrs: []string{"n:6379"}}, "more than one mode"},
		{"url and sentinel", cache.RedisClientOptions{URL: "redis://r:6379", SentinelMaster: "m", SentinelAddrs: []string{"s:26379"}}, "more than one mode"},
		{"sentinel and cluster", cache.RedisClientOptions{SentinelMaster: "m", SentinelAddrs: []string{"s:26379"}, ClusterAddrs: []string{"n:6379"}}, "more than one mode"},
		{"sentinel without addrs", cache.RedisClientOptions{SentinelMaster: "m"}, "without sentinel addresses"},
		{"sentinel addrs without master", cache.RedisClientOptions{URL: "redis://r:6379", SentinelAddrs: []string{"s:26379"}}, "without a sentinel master"},
		{"sentinel password without master", cache.RedisClientOptions{ClusterAddrs: []string{"n:6379"}, SentinelPassword: "pw"}, "without a sentinel master"},
		{"cluster with db", cache.RedisClientOptions{ClusterAddrs: []string{"n:6379"}, DB: 1}, "only database 0"},
		{"negative db", cache.RedisClientOptions{URL: "redis://r:6379", DB: -1}, "negative"},
		{"negative pool", cache.RedisClientOptions{URL: "redis://r:6379", PoolSize: -1}, "negative"},
		{"negative timeout", cache.RedisClientOptions{URL: "redis://r:6379", Timeout: -time.Second}, "negative"},
		{"negative dial timeout", cache.RedisClientOptions{URL: "redis://r:6379", DialTimeout: -time.Second}, "negative"},
		{"http scheme", cache.RedisClientOptions{URL: "http://r:6379"}, `scheme "http"`},
		{"unix scheme", cache.RedisClientOptions{URL: "unix:///run/redis.sock"}, `scheme "unix"`},
		{"no scheme", cache.RedisClientOptions{URL: "r:6379"}, "scheme"},
		{"query", cache.RedisClientOptions{URL: "redis://r:6379/0?max_retries=3"}, "query parameters"},
		{"no host", cache.RedisClientOptions{URL: "redis:///0"}, "no host"},
		{"bad db path", cache.RedisClientOptions{URL: "redis://r:6379/zero"}, "not a database number"},
		{"db conflict", cache.RedisClientOptions{URL: "redis://r:6379/2", DB: 3}, "URL names database 2 but DB is 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cache.NewRedisClient(tt.o)
			if err == nil {
				c.Close()
				t.Fatalf("NewRedisClient(%+v) succeeded, want an error containing %q", tt.o, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// An unparsable URL's error must not quote it: the URL may carry a password.
func TestNewRedisClientURLErrorHidesPassword(t *testing.T) {
	for _, u := range []string{"redis://user:s3cret@[::1", "redis://user:s3cret@r:port", "redis://user:s3cret@r:6379/x"} {
		_, err := cache.NewRedisClient(cache.RedisClientOptions{URL: u})
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("NewRedisClient(%q): %v; want an error without the password", u, err)
		}
	}
}

// checkFastFail checks what every mode must set on its connections: no retries, one dial attempt,
// socket deadlines from the context, no CLIENT SETINFO.
func checkFastFail(t *testing.T, o *redis.Options, timeout, dialTimeout time.Duration) {
	t.Helper()
	if o.MaxRetries != 0 { // -1 before go-redis normalises it: no retry
		t.Errorf("MaxRetries = %d, want 0 (no retries)", o.MaxRetries)
	}
	if o.DialerRetries != 1 {
		t.Errorf("DialerRetries = %d, want 1", o.DialerRetries)
	}
	if o.ReadTimeout != timeout || o.WriteTimeout != timeout {
		t.Errorf("Read/WriteTimeout = %v/%v, want %v", o.ReadTimeout, o.WriteTimeout, timeout)
	}
	if o.DialTimeout != dialTimeout {
		t.Errorf("DialTimeout = %v, want %v", o.DialTimeout, dialTimeout)
	}
	if !o.ContextTimeoutEnabled {
		t.Error("ContextTimeoutEnabled is off: a caller's deadline would not reach the socket")
	}
	if !o.DisableIdentity {
		t.Error("DisableIdentity is off: CLIENT SETINFO would be sent on every connection")
	}
	if o.MaintNotificationsConfig != nil && o.MaintNotificationsConfig.Mode != maintnotifications.ModeDisabled {
		t.Errorf("maintenance notifications mode %q, want disabled", o.MaintNotificationsConfig.Mode)
	}
}

func TestNewRedisClientStandaloneOptions(t *testing.T) {
	callerTLS := &tls.Config{MinVersion: tls.VersionTLS13}
	tests := []struct {
		name string
		in   cache.RedisClientOptions
		want func(t *testing.T, o *redis.Options)
	}{
		{"defaults", cache.RedisClientOptions{URL: "redis://r:6379"}, func(t *testing.T, o *redis.Options) {
			checkFastFail(t, o, 25*time.Millisecond, time.Second)
			if o.Addr != "r:6379" || o.DB != 0 || o.TLSConfig != nil || o.Username != "" || o.Password != "" {
				t.Errorf("Addr %q DB %d TLS %v user %q password set %v", o.Addr, o.DB, o.TLSConfig, o.Username, o.Password != "")
			}
			if want := 10 * runtime.GOMAXPROCS(0); o.PoolSize != want {
				t.Errorf("PoolSize = %d, want go-redis's default %d", o.PoolSize, want)
			}
		}},
		{"rediss with credentials and db", cache.RedisClientOptions{URL: "rediss://alice:pw@r.example:6380/3"}, func(t *testing.T, o *redis.Options) {
			if o.TLSConfig == nil || o.TLSConfig.ServerName != "r.example" {
				t.Errorf("TLSConfig %+v, want one for r.example", o.TLSConfig)
			}
			if o.Username != "alice" || o.Password != "pw" || o.DB != 3 {
				t.Errorf("user %q password %q DB %d", o.Username, o.Password, o.DB)
			}
		}},
		{"options override the URL's credentials", cache.RedisClientOptions{URL: "redis://alice:old@r:6379", Username: "bob", Password: "new"}, func(t *testing.T, o *redis.Options) {
			if o.Username != "bob" || o.Password != "new" {
				t.Errorf("user %q password %q, want bob/new", o.Username, o.Password)
			}
		}},
		{"password extends a URL user", cache.RedisClientOptions{URL: "redis://alice@r:6379", Password: "pw"}, func(t *testing.T, o *redis.Options) {
			if o.Username != "alice" || o.Password != "pw" {
				t.Errorf("user %q password %q, want alice/pw", o.Username, o.Password)
			}
		}},
		{"DB when the URL names none", cache.RedisClientOptions{URL: "redis://r:6379/", DB: 5}, func(t *testing.T, o *redis.Options) {
			if o.DB != 5 {
				t.Errorf("DB = %d, want 5", o.DB)
			}
		}},
		{"DB equal to the URL's", cache.RedisClientOptions{URL: "redis://r:6379/5", DB: 5}, func(t *testing.T, o *redis.Options) {
			if o.DB != 5 {
				t.Errorf("DB = %d, want 5", o.DB)
			}
		}},
		{"TLS option turns TLS on", cache.RedisClientOptions{URL: "redis://r:6379", TLS: callerTLS}, func(t *testing.T, o *redis.Options) {
			if o.TLSConfig == nil || o.TLSConfig == callerTLS || o.TLSConfig.MinVersion != tls.VersionTLS13 {
				t.Errorf("TLSConfig %p %+v, want a copy of the caller's", o.TLSConfig, o.TLSConfig)
			}
		}},
		{"TLS option with rediss keeps the URL's server name", cache.RedisClientOptions{URL: "rediss://r.example:6380", TLS: callerTLS}, func(t *testing.T, o *redis.Options) {
			if o.TLSConfig.ServerName != "r.example" || o.TLSConfig.MinVersion != tls.VersionTLS13 {
				t.Errorf("TLSConfig %+v", o.TLSConfig)
			}
			if callerTLS.ServerName != "" {
				t.Error("the caller's tls.Config was modified")
			}
		}},
		{"sizes and timeouts", cache.RedisClientOptions{URL: "redis://r:6379", PoolSize: 7, Timeout: time.Second, DialTimeout: 3 * time.Second}, func(t *testing.T, o *redis.Options) {
			checkFastFail(t, o, time.Second, 3*time.Second)
			if o.PoolSize != 7 {
				t.Errorf("PoolSize = %d, want 7", o.PoolSize)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cache.NewRedisClient(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			o := c.(*redis.Client).Options()
			checkFastFail(t, o, o.ReadTimeout, o.DialTimeout)
			tt.want(t, o)
		})
	}
}

func TestNewRedisClientClusterOptions(t *testing.T) {
	c, err := cache.NewRedisClient(cache.RedisClientOptions{
		ClusterAddrs: []string{"n1:6379", "n2:6379"}, Username: "u", Password: "p", PoolSize: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := c.(*redis.ClusterClient).Options()
	if strings.Join(o.Addrs, ",") != "n1:6379,n2:6379" || o.Username != "u" || o.Password != "p" || o.PoolSize != 4 {
		t.Errorf("Addrs %v user %q password %q pool %d", o.Addrs, o.Username, o.Password, o.PoolSize)
	}
	// For a cluster, -1 is "no retry" as stored; the nodes' options normalise it to 0.
	if o.MaxRetries != -1 || o.DialerRetries != 1 || !o.DisableIdentity || !o.ContextTimeoutEnabled ||
		o.ReadTimeout != 25*time.Millisecond || o.WriteTimeout != 25*time.Millisecond || o.DialTimeout != time.Second {
		t.Errorf("cluster options not tuned to fail fast: %+v", o)
	}
	if o.MaintNotificationsConfig == nil || o.MaintNotificationsConfig.Mode != maintnotifications.ModeDisabled {
		t.Errorf("maintenance notifications %+v, want disabled", o.MaintNotificationsConfig)
	}
}

func TestNewRedisClientSentinelOptions(t *testing.T) {
	c, err := cache.NewRedisClient(cache.RedisClientOptions{
		SentinelMaster: "mymaster", SentinelAddrs: []string{"s1:26379"}, SentinelPassword: "sp",
		Username: "u", Password: "p", DB: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := c.(*redis.Client).Options() // the master's connection options
	checkFastFail(t, o, 25*time.Millisecond, time.Second)
	if o.Username != "u" || o.Password != "p" || o.DB != 2 {
		t.Errorf("user %q password %q DB %d", o.Username, o.Password, o.DB)
	}
}

// The credentials reach a real server: the password alone, a user from the URL with the
// password from the options, and a user from the options overriding the URL's.
func TestNewRedisClientAuth(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t,
		"--requirepass", "defaultpw",
		"--user", "alice", "on", ">alicepw", "~*", "&*", "+@all")
	ctx := t.Context()
	tests := []struct {
		name string
		o    cache.RedisClientOptions
		ok   bool
	}{
		{"no credentials", cache.RedisClientOptions{URL: "redis://" + srv.Addr()}, false},
		{"password", cache.RedisClientOptions{URL: "redis://" + srv.Addr(), Password: "defaultpw"}, true},
		{"wrong password", cache.RedisClientOptions{URL: "redis://" + srv.Addr(), Password: "nope"}, false},
		{"user from URL, password from options", cache.RedisClientOptions{URL: "redis://alice@" + srv.Addr(), Password: "alicepw"}, true},
		{"user from options overrides URL", cache.RedisClientOptions{URL: "redis://bob:alicepw@" + srv.Addr(), Username: "alice"}, true},
		{"URL user with default password", cache.RedisClientOptions{URL: "redis://alice@" + srv.Addr(), Password: "defaultpw"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Timeout = semanticsTimeout
			c, err := cache.NewRedisClient(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r := cache.NewRedis(c, cache.RedisOptions{Timeout: semanticsTimeout})
			err = r.Set(ctx, "k", []byte("v"), time.Minute)
			if (err == nil) != tt.ok {
				t.Fatalf("Set: %v, want success %v", err, tt.ok)
			}
			if tt.ok {
				if v, ok, err := r.Get(ctx, "k"); err != nil || !ok || string(v) != "v" {
					t.Fatalf("Get = %q, %v, %v", v, ok, err)
				}
			}
			// Batched reads go on a connection of the store's own: authenticated the same,
			// and refused the same (an error, never a miss).
			batched := cache.NewRedis(c, cache.RedisOptions{Timeout: semanticsTimeout, BatchReads: true})
			if v, ok, err := batched.Get(ctx, "k"); (err == nil && ok && string(v) == "v") != tt.ok || (!tt.ok && err == nil) {
				t.Fatalf("batched Get = %q, %v, %v; want success %v", v, ok, err, tt.ok)
			}
		})
	}
}

// TLS is used for rediss:// and whenever the TLS option is set, and verified against the roots
// given.
func TestNewRedisClientTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	roots := writeTestPKI(t, dir)
	tlsPort := freeTCPPort(t)
	srv := redistest.Start(t,
		"--tls-port", strconv.Itoa(tlsPort),
		"--tls-cert-file", filepath.Join(dir, "server.pem"),
		"--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"),
		"--tls-auth-clients", "no")
	tlsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	trusting := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	tests := []struct {
		name string
		o    cache.RedisClientOptions
		ok   bool
	}{
		{"rediss with the CA", cache.RedisClientOptions{URL: "rediss://" + tlsAddr, TLS: trusting}, true},
		{"redis URL, TLS option", cache.RedisClientOptions{URL: "redis://" + tlsAddr, TLS: trusting}, true},
		{"rediss, system roots", cache.RedisClientOptions{URL: "rediss://" + tlsAddr}, false},
		{"plain to the TLS port", cache.RedisClientOptions{URL: "redis://" + tlsAddr}, false},
		{"plain to the plain port", cache.RedisClientOptions{URL: "redis://" + srv.Addr()}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Timeout = semanticsTimeout
			c, err := cache.NewRedisClient(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(t.Context(), semanticsTimeout)
			defer cancel()
			if err := c.Ping(ctx).Err(); (err == nil) != tt.ok {
				t.Fatalf("PING: %v, want success %v", err, tt.ok)
			}
			// Batched reads, on a connection of the store's own, are dialled as the
			// client dials: over TLS, verified against the same roots.
			r := cache.NewRedis(c, cache.RedisOptions{Timeout: semanticsTimeout, BatchReads: true})
			if tt.ok {
				if err := r.Set(ctx, "tls-k", []byte("v"), time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			if v, ok, err := r.Get(ctx, "tls-k"); (err == nil && ok && string(v) == "v") != tt.ok || (!tt.ok && err == nil) {
				t.Fatalf("batched Get = %q, %v, %v; want success %v", v, ok, err, tt.ok)
			}
		})
	}
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeTestPKI writes ca.pem, server.pem and server.key (for 127.0.0.1) into dir and returns a
// pool trusting the CA.
func writeTestPKI(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cachetest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"ca.pem":     {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem": {Type: "CERTIFICATE", Bytes: der},
		"server.key": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}
