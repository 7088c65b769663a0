package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/extauthz/extauthz/internal/gctune"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/logging"
)

// devCmd runs the gateway with nothing else needed: a built-in issuer on
// the HTTP listener, the in-process cache, two protected resources — the
// second one minting an upstream credential by token exchange at the
// built-in issuer — and ready tokens printed with the commands to try them.
func devCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	grpcAddr := fs.String("grpc", "127.0.0.1:9001", "gRPC Check listener")
	httpAddr := fs.String("http", "127.0.0.1:8080", "HTTP listener (metadata, dev issuer, health)")
	adminAddr := fs.String("admin", "127.0.0.1:9090", `admin listener ("off" to disable)`)
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	redisURL := fs.String("redis", "", "share the cache through this Redis (redis://host:port/db); empty: in-process only")
	if err := fs.Parse(args); err != nil {
		return err
	}

	// Bind first: the issuer and resource URLs name the real ports, so
	// ":0" works too.
	var o appOptions
	var err error
	if o.lnGRPC, err = net.Listen("tcp", *grpcAddr); err != nil {
		return fmt.Errorf("dev: gRPC listener: %w (choose another with --grpc)", err)
	}
	if o.lnHTTP, err = net.Listen("tcp", *httpAddr); err != nil {
		o.lnGRPC.Close()
		return fmt.Errorf("dev: HTTP listener: %w (choose another with --http)", err)
	}
	if *adminAddr != "off" {
		if o.lnAdmin, err = net.Listen("tcp", *adminAddr); err != nil {
			o.lnGRPC.Close()
			o.lnHTTP.Close()
			return fmt.Errorf("dev: admin listener: %w (choose another with --admin, or off)", err)
		}
	}
	base := "http://" + o.lnHTTP.Addr().String()
	resource := base + "/mcp"
	upstreamResource := base + "/mcp-upstream"

	iss, err := devissuer.New(base+"/dev", "ES256", nil)
	if err != nil {
		return err
	}
	iss.DefaultAudience = resource
	o.extraHTTP = iss.Handler()

	// The second resource's upstream credential: the gateway exchanges
	// the client's token at the dev issuer as a client made up for this
	// run, whose secret (and, with Redis, the key that encrypts minted
	// tokens there) reaches the config the only way secrets do: a file.
	secrets, err := newDevSecrets()
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer secrets.remove()
	clientSecret := randomToken()
	iss.SetClient(devUpstreamClient, clientSecret)
	ut := config.UpstreamToken{
		Mode:     config.UpstreamModeExchange,
		ClientID: devUpstreamClient,
		Audience: []string{devUpstreamAudience},
		Actor:    true,
	}
	if ut.ClientSecret, err = secrets.put("upstream-client-secret", clientSecret); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	var up config.Upstream
	if *redisURL != "" {
		if up.TokenEncryptionKey, err = secrets.put("upstream-token-key", randomToken()+randomToken()); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
	}

	devResource := func(name, uri, description string) config.Resource {
		return config.Resource{
			Name:                 name,
			Resource:             uri,
			Hosts:                []string{"127.0.0.1", "localhost"},
			PathPrefix:           "/" + name,
			AuthorizationServers: []config.AuthorizationServer{{Issuer: iss.Issuer()}},
			ScopesSupported:      []string{"mcp:tools", "mcp:admin"},
			RequiredScopes:       []string{"mcp:tools"},
			ResourceName:         description,
		}
	}
	withUpstream := devResource("mcp-upstream", upstreamResource, "extauthz development resource with an upstream credential")
	withUpstream.UpstreamToken = ut
	cfg := &config.Config{
		Listen:    config.Listen{GRPC: o.lnGRPC.Addr().String(), HTTP: o.lnHTTP.Addr().String(), Admin: addrOf(o.lnAdmin)},
		PublicURL: base,
		Log:       config.Log{Level: *level, Format: "text"},
		Cache:     config.Cache{RedisURL: *redisURL},
		Upstream:  up,
		Resources: []config.Resource{devResource("mcp", resource, "extauthz development resource"), withUpstream},
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("dev: built-in config: %w", err)
	}
	out := logging.NewAsyncWriter(stderr)
	defer closeLog(out)
	log := newLogger(out, cfg.Log.Level, cfg.Log.Format)
	o.adminToken = randomToken()
	o.logDropped = out.Dropped
	a, err := newApp(cfg, log, o)
	if err != nil {
		return err
	}
	// Built: every secret has been read (dev has no reload), so the files
	// go now rather than at exit, and nothing is left behind if the
	// process is killed.
	secrets.remove()
	tok, err := iss.Mint(devissuer.Token{Subject: "dev-user", ClientID: "dev-client", Scopes: []string{"mcp:tools"}})
	if err != nil {
		return err
	}
	// Its own token: a token's aud names one resource (RFC 8707).
	upstreamTok, err := iss.Mint(devissuer.Token{Subject: "dev-user", ClientID: "dev-client", Scopes: []string{"mcp:tools"}, Audience: []string{upstreamResource}})
	if err != nil {
		return err
	}
	cacheDesc := "in process"
	if *redisURL != "" {
		cacheDesc = "in process, then Redis at " + *redisURL
	}
	printDevBanner(stdout, devBanner{
		cmd: selfCommand(), grpc: cfg.Listen.GRPC, http: base, admin: cfg.Listen.Admin,
		resource: resource, issuer: iss.Issuer(), token: tok, cache: cacheDesc, adminToken: o.adminToken,
		upstreamResource: upstreamResource, upstreamToken: upstreamTok,
	})
	defer gctune.Start(uint64(cfg.Runtime.GCHeadroomBytes)).Stop() //nolint:gosec // validated: 0 to 1 TiB
	return a.run(ctx)
}

type devBanner struct {
	cmd, grpc, http, admin, resource, issuer, token, cache, adminToken string
	upstreamResource, upstreamToken                                    string
}

func printDevBanner(w io.Writer, b devBanner) {
	fmt.Fprintf(w, `
extauthz dev — a development gateway with a built-in issuer (never use it in production)

  gRPC Check      %[2]s
  HTTP            %[3]s   (metadata, dev issuer, /authz/*, /healthz, /readyz)
  admin           %[4]s
  resource        %[5]s   (requires scope mcp:tools)
  resource        %[10]s   (the same, plus a minted upstream credential)
  issuer          %[6]s
  cache           %[8]s

A token for that resource, valid for one hour (sub=dev-user, scope=mcp:tools):

%[7]s

Try a Check with it, exactly as Envoy would send one:

  %[1]s check --addr %[2]s --url %[5]s --token %[7]s

The second resource swaps the client's token for one minted for %[12]s
(RFC 8693 token exchange, acting as %[13]s), which check shows redacted:

  %[1]s check --addr %[2]s --url %[10]s --token %[11]s

Without a token: 401 and the challenge an MCP client follows:

  %[1]s check --addr %[2]s --url %[5]s

The same decision over HTTP, as nginx auth_request asks for it:

  curl -i -H 'X-Original-Method: POST' -H 'X-Original-URI: /mcp' -H 'Authorization: Bearer %[7]s' %[3]s/authz/nginx

The protected-resource metadata (RFC 9728), and more tokens from the dev issuer:

  curl %[3]s/.well-known/oauth-protected-resource/mcp
  curl -d grant_type=client_credentials -d scope=mcp:tools -d resource=%[5]s %[6]s/token
%[9]s
Stop with Ctrl-C.

`, b.cmd, b.grpc, b.http, b.admin, b.resource, b.issuer, b.token, b.cache, b.purge(),
		b.upstreamResource, b.upstreamToken, devUpstreamAudience, devUpstreamClient)
}

// purge is the banner's revocation example, when the admin listener is on.
func (b devBanner) purge() string {
	if b.admin == "off" {
		return ""
	}
	return fmt.Sprintf(`
Revoke the token on every replica (the admin token is made up for this run):

  curl -H 'Authorization: Bearer %s' -d '{"token":"%s"}' http://%s/cache/purge
`, b.adminToken, b.token, b.admin)
}

// The gateway's client at the dev issuer, and the upstream API its second
// resource's credential is for (a name only: nothing listens there).
const (
	devUpstreamClient   = "extauthz-dev"
	devUpstreamAudience = "https://upstream.example/api"
)

// devSecrets holds the secrets dev makes up for a run, in files of a
// private temporary directory: the configuration takes secrets only from
// the environment or from files, and a file, unlike a variable set in
// this process, is neither inherited by children nor shared by two dev
// runs in one process (the tests).
type devSecrets struct{ dir string }

func newDevSecrets() (*devSecrets, error) {
	dir, err := os.MkdirTemp("", "extauthz-dev-") // mode 0700
	if err != nil {
		return nil, fmt.Errorf("a directory for this run's secrets: %w", err)
	}
	return &devSecrets{dir: dir}, nil
}

// put writes value to a 0600 file and returns the Secret that names it.
func (s *devSecrets) put(name, value string) (config.Secret, error) {
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, []byte(value), 0o600); err != nil {
		return config.Secret{}, fmt.Errorf("writing this run's secret: %w", err)
	}
	return config.Secret{File: path}, nil
}

// remove deletes the files; it may be called more than once.
func (s *devSecrets) remove() { _ = os.RemoveAll(s.dir) }

// randomToken makes dev's admin token and secrets: 128 random bits, hex.
func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// selfCommand is how the user can run this binary again: "go run" builds
// into a temporary directory that is gone afterwards.
func selfCommand() string {
	if strings.Contains(os.Args[0], "go-build") {
		return "go run ./cmd/extauthz"
	}
	return os.Args[0]
}
