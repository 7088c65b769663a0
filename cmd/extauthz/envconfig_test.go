package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// clearConfigEnv makes sure no variable of the process's own environment
// leaks into a test of configuration from the environment.
func clearConfigEnv(t *testing.T) {
	t.Helper()
	t.Setenv("EXTAUTHZ_CONFIG", "")
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "EXTAUTHZ_") {
			t.Setenv(name, "") // empty counts as unset
		}
	}
	for _, v := range config.EnvVars() {
		t.Setenv(v.Name, "")
		if v.Alias != "" {
			t.Setenv(v.Alias, "")
		}
	}
}

// TestServeFromEnvironment starts serve with no config file, configured as
// the product it replaces was: by variables alone, some under their old
// OAUTH_* names; then reads the metadata and asks Checks.
func TestServeFromEnvironment(t *testing.T) {
	iss, _ := startIssuer(t, "https://mcp.example.com/mcp")
	clearConfigEnv(t)
	t.Setenv("OAUTH_RESOURCE_URI", "https://mcp.example.com/mcp")
	t.Setenv("OAUTH_AUTHORIZATION_SERVER", iss.Issuer())
	t.Setenv("EXTAUTHZ_REQUIRED_SCOPES", "mcp:tools, mcp:read")
	t.Setenv("ALLOWED_ORIGIN", "https://app.example.com")
	t.Setenv("EXTAUTHZ_PUBLIC_PATHS", "GET /mcp/health")
	t.Setenv("EXTAUTHZ_LISTEN_GRPC", "127.0.0.1:0")
	t.Setenv("EXTAUTHZ_LISTEN_HTTP", "127.0.0.1:0")
	t.Setenv("EXTAUTHZ_LISTEN_ADMIN", "127.0.0.1:0")

	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"serve"}, io.Discard, &logs) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d; logs:\n%s", code, logs.String())
		}
	}()
	var addrs struct{ GRPC, HTTP string }
	waitFor(t, "the serving log line", func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			var l map[string]any
			if json.Unmarshal([]byte(line), &l) == nil && l["msg"] == "serving" {
				addrs.GRPC, addrs.HTTP = l["grpc"].(string), l["http"].(string)
				return true
			}
		}
		return false
	})

	t.Run("metadata", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+addrs.HTTP+"/.well-known/oauth-protected-resource/mcp", nil)
		req.Host = "mcp.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var doc struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
			ScopesSupported      []string `json:"scopes_supported"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &doc) != nil {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if doc.Resource != "https://mcp.example.com/mcp" || len(doc.AuthorizationServers) != 1 || doc.AuthorizationServers[0] != iss.Issuer() ||
			strings.Join(doc.ScopesSupported, " ") != "mcp:tools mcp:read" {
			t.Errorf("document %s", body)
		}
	})
	t.Run("no token: the challenge names the scopes", func(t *testing.T) {
		code, out, _ := runCmd(ctx, "check", "--addr", addrs.GRPC, "--url", "https://mcp.example.com/mcp", "--method", "POST")
		if code != 1 || !strings.Contains(out, "status: 401") || !strings.Contains(out, `scope="mcp:tools mcp:read"`) {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
	t.Run("a token with both scopes is allowed", func(t *testing.T) {
		tok, err := iss.Mint(devissuer.Token{Subject: "alice", ClientID: "cli", Scopes: []string{"mcp:tools", "mcp:read"}})
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCmd(ctx, "check", "--addr", addrs.GRPC, "--url", "https://mcp.example.com/mcp", "--method", "POST", "--token", tok,
			"--header", "Origin: https://app.example.com")
		if code != 0 || !strings.Contains(out, "x-extauthz-subject: alice") {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
	})
	t.Run("a public path passes without a token, and its variants do not", func(t *testing.T) {
		code, out, errOut := runCmd(ctx, "check", "--addr", addrs.GRPC, "--url", "https://mcp.example.com/mcp/health", "--header", "X-Extauthz-Subject: root")
		if code != 0 || !strings.Contains(out, "decision: ALLOW") || strings.Contains(out, "x-extauthz-subject: ") ||
			!regexp.MustCompile(`headers removed: .*x-extauthz-subject`).MatchString(out) {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
		for url, status := range map[string]string{"https://mcp.example.com/mcp/health;x": "400", "https://mcp.example.com/mcp//health": "401", "https://mcp.example.com/mcp/healthz": "401"} {
			code, out, _ := runCmd(ctx, "check", "--addr", addrs.GRPC, "--url", url)
			if code != 1 || !strings.Contains(out, "status: "+status) {
				t.Errorf("%s: exit %d, want %s:\n%s", url, code, status, out)
			}
		}
		code, out, _ = runCmd(ctx, "check", "--addr", addrs.GRPC, "--url", "https://mcp.example.com/mcp/health", "--method", "HEAD")
		if code != 1 || !strings.Contains(out, "status: 401") {
			t.Errorf("HEAD: exit %d:\n%s", code, out)
		}
	})
	t.Run("an origin not in ALLOWED_ORIGIN is refused", func(t *testing.T) {
		tok, _ := iss.Mint(devissuer.Token{Subject: "alice", ClientID: "cli", Scopes: []string{"mcp:tools", "mcp:read"}})
		code, out, _ := runCmd(ctx, "check", "--addr", addrs.GRPC, "--url", "https://mcp.example.com/mcp", "--method", "POST", "--token", tok,
			"--header", "Origin: https://evil.example.com")
		if code != 1 || !strings.Contains(out, "status: 403") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
	t.Run("SIGHUP rebuilds the configuration from the environment", func(t *testing.T) {
		// A process's environment is fixed from outside; the test changes
		// its own to show that the reload reads it again, through the
		// same validation.
		t.Setenv("EXTAUTHZ_REQUIRED_SCOPES", "mcp:tools")
		// Should the reloader not listen yet, this keeps SIGHUP's default
		// action (exit) from ending the test binary: the wait fails instead.
		hup := make(chan os.Signal, 2)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the reload", func() bool { return strings.Contains(logs.String(), `"msg":"config reloaded","file":"(environment)"`) })
		code, out, _ := runCmd(ctx, "check", "--addr", addrs.GRPC, "--url", "https://mcp.example.com/mcp", "--method", "POST")
		if code != 1 || !strings.Contains(out, `scope="mcp:tools"`) {
			t.Fatalf("after the reload, exit %d:\n%s", code, out)
		}
	})
	t.Run("a bad environment is refused on SIGHUP and the running config stays", func(t *testing.T) {
		t.Setenv("EXTAUTHZ_REQUIRED_SCOPES", "offline_access")
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the refusal", func() bool {
			return strings.Contains(logs.String(), "config reload refused") &&
				strings.Contains(logs.String(), "EXTAUTHZ_REQUIRED_SCOPES (resources[0].required_scopes[0])")
		})
		code, out, _ := runCmd(ctx, "check", "--addr", addrs.GRPC, "--url", "https://mcp.example.com/mcp", "--method", "POST")
		if code != 1 || !strings.Contains(out, `scope="mcp:tools"`) {
			t.Fatalf("after the refused reload, exit %d:\n%s", code, out)
		}
	})
}

func TestServeWithoutConfiguration(t *testing.T) {
	clearConfigEnv(t)
	code, _, errOut := runCmd(context.Background(), "serve")
	if code != 1 || !strings.Contains(errOut, "--config FILE") || !strings.Contains(errOut, "EXTAUTHZ_RESOURCE") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestCheckConfigFromEnvironment(t *testing.T) {
	t.Run("valid: prints the effective configuration", func(t *testing.T) {
		clearConfigEnv(t)
		t.Setenv("EXTAUTHZ_RESOURCE", "https://mcp.example.com/mcp")
		t.Setenv("EXTAUTHZ_ISSUER", "https://idp.example.com")
		t.Setenv("OAUTH_CLIENT_ID", "gateway")
		t.Setenv("OAUTH_CLIENT_SECRET", "s3cret-value")
		code, out, errOut := runCmd(context.Background(), "check-config")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"environment: ok", "resource: https://mcp.example.com/mcp", "token_mode: auto", "client_id: gateway", "env: OAUTH_CLIENT_SECRET", "path_prefix: /mcp"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "s3cret-value") {
			t.Errorf("the effective configuration shows the secret's value:\n%s", out)
		}
		// What it prints is a policy file that says the same.
		f := filepath.Join(t.TempDir(), "effective.yaml")
		if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := runCmd(context.Background(), "check-config", f); code != 0 {
			t.Fatalf("the printed configuration does not load as a file: %s", errOut)
		}
		fromFile, err := config.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		fromEnv, err := config.FromEnv(os.LookupEnv)
		if err != nil {
			t.Fatal(err)
		}
		// Compared as YAML: an empty list and a nil one print alike.
		a, _ := yaml.Marshal(fromFile)
		b, _ := yaml.Marshal(fromEnv)
		if string(a) != string(b) {
			t.Errorf("the printed configuration differs:\n file %s\n env  %s", a, b)
		}
	})
	t.Run("invalid: names the variables", func(t *testing.T) {
		clearConfigEnv(t)
		t.Setenv("EXTAUTHZ_RESOURCE", "http://mcp.example.com/mcp")
		t.Setenv("EXTAUTHZ_LOG_LEVEL", "loud")
		code, _, errOut := runCmd(context.Background(), "check-config")
		if code != 1 {
			t.Fatalf("exit %d", code)
		}
		for _, want := range []string{"environment: invalid", "EXTAUTHZ_RESOURCE (resources[0].resource)", "EXTAUTHZ_ISSUER (resources[0].authorization_servers)", "EXTAUTHZ_LOG_LEVEL (log.level)"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q:\n%s", want, errOut)
			}
		}
	})
	t.Run("a misspelt variable", func(t *testing.T) {
		clearConfigEnv(t)
		t.Setenv("EXTAUTHZ_RESOURCE", "https://mcp.example.com/mcp")
		t.Setenv("EXTAUTHZ_ISSUER", "https://idp.example.com")
		t.Setenv("EXTAUTHZ_REQUIRED_SCOPE", "mcp:tools")
		t.Setenv("EXTAUTHZ_SERVICE_HOST", "10.0.0.1") // Kubernetes' service links are not ours
		t.Setenv("EXTAUTHZ_PORT_9001_TCP", "tcp://10.0.0.1:9001")
		code, _, errOut := runCmd(context.Background(), "check-config")
		if code != 1 || !strings.Contains(errOut, "EXTAUTHZ_REQUIRED_SCOPE: unknown variable") || strings.Contains(errOut, "SERVICE_HOST") || strings.Contains(errOut, "PORT_9001") {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
	})
	t.Run("an alias that disagrees", func(t *testing.T) {
		clearConfigEnv(t)
		t.Setenv("EXTAUTHZ_RESOURCE", "https://mcp.example.com/mcp")
		t.Setenv("OAUTH_RESOURCE_URI", "https://other.example.com/mcp")
		t.Setenv("EXTAUTHZ_ISSUER", "https://idp.example.com")
		code, _, errOut := runCmd(context.Background(), "check-config")
		if code != 1 || !strings.Contains(errOut, "EXTAUTHZ_RESOURCE: differs from OAUTH_RESOURCE_URI") {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
	})
}
