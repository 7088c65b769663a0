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
	"strings"

	"github.com/extauthz/extauthz/internal/gctune"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// devCmd runs the gateway with nothing else needed: a built-in issuer on
// the HTTP listener, the in-process cache, one protected resource, and a
// ready token printed with the commands to try it.
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

	iss, err := devissuer.New(base+"/dev", "ES256", nil)
	if err != nil {
		return err
	}
	iss.DefaultAudience = resource
	o.extraHTTP = iss.Handler()

	cfg := &config.Config{
		Listen:    config.Listen{GRPC: o.lnGRPC.Addr().String(), HTTP: o.lnHTTP.Addr().String(), Admin: addrOf(o.lnAdmin)},
		PublicURL: base,
		Log:       config.Log{Level: *level, Format: "text"},
		Cache:     config.Cache{RedisURL: *redisURL},
		Resources: []config.Resource{{
			Name:                 "mcp",
			Resource:             resource,
			Hosts:                []string{"127.0.0.1", "localhost"},
			PathPrefix:           "/mcp",
			AuthorizationServers: []config.AuthorizationServer{{Issuer: iss.Issuer()}},
			ScopesSupported:      []string{"mcp:tools", "mcp:admin"},
			RequiredScopes:       []string{"mcp:tools"},
			ResourceName:         "extauthz development resource",
		}},
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("dev: built-in config: %w", err)
	}
	log := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	o.adminToken = randomToken()
	a, err := newApp(cfg, log, o)
	if err != nil {
		return err
	}
	tok, err := iss.Mint(devissuer.Token{Subject: "dev-user", ClientID: "dev-client", Scopes: []string{"mcp:tools"}})
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
	})
	defer gctune.Start(uint64(cfg.Runtime.GCHeadroomBytes)).Stop() //nolint:gosec // validated: 0 to 1 TiB
	return a.run(ctx)
}

type devBanner struct {
	cmd, grpc, http, admin, resource, issuer, token, cache, adminToken string
}

func printDevBanner(w io.Writer, b devBanner) {
	fmt.Fprintf(w, `
extauthz dev — a development gateway with a built-in issuer (never use it in production)

  gRPC Check      %[2]s
  HTTP            %[3]s   (metadata, dev issuer, /authz/*, /healthz, /readyz)
  admin           %[4]s
  resource        %[5]s   (requires scope mcp:tools)
  issuer          %[6]s
  cache           %[8]s

A token for that resource, valid for one hour (sub=dev-user, scope=mcp:tools):

%[7]s

Try a Check with it, exactly as Envoy would send one:

  %[1]s check --addr %[2]s --url %[5]s --token %[7]s

Without a token: 401 and the challenge an MCP client follows:

  %[1]s check --addr %[2]s --url %[5]s

The same decision over HTTP, as nginx auth_request asks for it:

  curl -i -H 'X-Original-Method: POST' -H 'X-Original-URI: /mcp' -H 'Authorization: Bearer %[7]s' %[3]s/authz/nginx

The protected-resource metadata (RFC 9728), and more tokens from the dev issuer:

  curl %[3]s/.well-known/oauth-protected-resource/mcp
  curl -d grant_type=client_credentials -d scope=mcp:tools -d resource=%[5]s %[6]s/token
%[9]s
Stop with Ctrl-C.

`, b.cmd, b.grpc, b.http, b.admin, b.resource, b.issuer, b.token, b.cache, b.purge())
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

// randomToken makes dev's admin token: 128 random bits, hex.
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
