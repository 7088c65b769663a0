package deploy_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/extauthz/extauthz/pkg/config"
)

// TestComposeEnvOnly loads docker-compose.yaml with the env-only override
// as `docker compose -f … -f deploy/compose/env-only.yaml` does, and checks
// that the gateway then runs with no file and that its environment is a
// valid configuration of the same resource as the stack's policy file.
func TestComposeEnvOnly(t *testing.T) {
	var files []types.ConfigFile
	for _, f := range []string{"docker-compose.yaml", "deploy/compose/env-only.yaml"} {
		files = append(files, types.ConfigFile{Filename: mustAbs(t, filepath.Join(root, f))})
	}
	details := types.ConfigDetails{WorkingDir: mustAbs(t, root), ConfigFiles: files, Environment: types.Mapping{}}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("directory-name", false)
		o.ResolvePaths = true
	})
	if err != nil {
		t.Fatal(err)
	}
	gw, ok := p.Services["extauthz"]
	if !ok {
		t.Fatal("no extauthz service")
	}
	if !slices.Equal([]string(gw.Command), []string{"serve"}) {
		t.Errorf("command %v, want serve alone", gw.Command)
	}
	for _, v := range gw.Volumes {
		if strings.HasPrefix(v.Target, "/etc/extauthz") {
			t.Errorf("a config file is still mounted at %s", v.Target)
		}
	}
	env := func(name string) (string, bool) {
		v, ok := gw.Environment[name]
		if !ok || v == nil {
			return "", false
		}
		return *v, true
	}
	if !config.EnvConfigured(env) {
		t.Fatal("EXTAUTHZ_RESOURCE is not set: serve would have no configuration")
	}
	var environ []string
	for name, v := range gw.Environment {
		if v != nil {
			environ = append(environ, name+"="+*v)
		}
	}
	if unknown := config.UnknownEnvVars(environ); len(unknown) > 0 {
		t.Errorf("serve refuses the unknown variables %v", unknown)
	}
	got, err := config.FromEnv(env)
	if err != nil {
		t.Fatalf("the service's environment fails the gateway's config check:\n%v", err)
	}
	want, err := config.Load(filepath.Join(root, "deploy/compose/extauthz.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	g, w := got.Resources[0], want.Resources[0]
	if g.Name != w.Name || g.Resource != w.Resource || g.AuthorizationServers[0].Issuer != w.AuthorizationServers[0].Issuer ||
		!slices.Equal(g.RequiredScopes, w.RequiredScopes) || !slices.Equal(g.ScopesSupported, w.ScopesSupported) ||
		!slices.Equal(g.AllowedOrigins, w.AllowedOrigins) || got.Listen != want.Listen || got.PublicURL != want.PublicURL ||
		got.Cache.RedisURL != want.Cache.RedisURL || got.Admin.Token != want.Admin.Token {
		t.Errorf("the environment describes another gateway than deploy/compose/extauthz.yaml:\n got %+v\nwant %+v", got, want)
	}
}
