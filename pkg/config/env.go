package config

import (
	"fmt"
	"sort"
	"strings"
)

// Configuration from the environment alone: one protected resource,
// described by EXTAUTHZ_* variables, for a container or a pod that needs
// no policy file. FromEnv builds the same Config a file would give, and it
// passes through the same ApplyDefaults and Validate; its errors name the
// variable as well as the key path.

// EnvVar describes one variable FromEnv reads.
type EnvVar struct {
	// Name is the variable's name (EXTAUTHZ_...).
	Name string
	// Alias is the name the variable had in the product extauthz replaces
	// (OAUTH_*, ALLOWED_ORIGIN), also accepted; "" for none. When both are
	// set they must be equal.
	Alias string
	// Key is the configuration key it sets.
	Key string
	// List: a list of values separated by spaces and/or commas.
	List bool
	// Secret: the variable holds a secret; the Config names the variable
	// (Secret.Env) rather than holding its value.
	Secret bool
}

// EnvVars lists every variable FromEnv reads, in the order docs/configuration.md
// documents them.
func EnvVars() []EnvVar {
	return []EnvVar{
		{Name: "EXTAUTHZ_RESOURCE", Alias: "OAUTH_RESOURCE_URI", Key: "resources[0].resource"},
		{Name: "EXTAUTHZ_ISSUER", Alias: "OAUTH_AUTHORIZATION_SERVER", Key: "resources[0].authorization_servers[].issuer", List: true},
		{Name: "EXTAUTHZ_REQUIRED_SCOPES", Alias: "OAUTH_REQUIRED_SCOPES", Key: "resources[0].required_scopes", List: true},
		{Name: "EXTAUTHZ_SCOPES_SUPPORTED", Key: "resources[0].scopes_supported", List: true},
		{Name: "EXTAUTHZ_ALLOWED_ORIGINS", Alias: "ALLOWED_ORIGIN", Key: "resources[0].allowed_origins", List: true},
		{Name: "EXTAUTHZ_AUDIENCES", Key: "resources[0].audiences", List: true},
		{Name: "EXTAUTHZ_RESOURCE_NAME", Key: "resources[0].name"},
		{Name: "EXTAUTHZ_HOSTS", Key: "resources[0].hosts", List: true},
		{Name: "EXTAUTHZ_PATH_PREFIX", Key: "resources[0].path_prefix"},
		{Name: "EXTAUTHZ_PUBLIC_PATHS", Key: "resources[0].public"},
		{Name: "EXTAUTHZ_TOKEN_MODE", Key: "resources[0].authorization_servers[].token_mode"},
		{Name: "EXTAUTHZ_INTROSPECTION_CLIENT_ID", Alias: "OAUTH_CLIENT_ID", Key: "resources[0].authorization_servers[].introspection.client_id"},
		{Name: "EXTAUTHZ_INTROSPECTION_CLIENT_SECRET", Alias: "OAUTH_CLIENT_SECRET", Key: "resources[0].authorization_servers[].introspection.client_secret", Secret: true},
		{Name: "EXTAUTHZ_INTROSPECTION_ENDPOINT", Key: "resources[0].authorization_servers[].introspection.endpoint"},
		{Name: "EXTAUTHZ_PUBLIC_URL", Key: "public_url"},
		{Name: "EXTAUTHZ_LISTEN_GRPC", Key: "listen.grpc"},
		{Name: "EXTAUTHZ_LISTEN_HTTP", Key: "listen.http"},
		{Name: "EXTAUTHZ_LISTEN_ADMIN", Key: "listen.admin"},
		{Name: "EXTAUTHZ_REDIS_URL", Key: "cache.redis_url"},
		{Name: "EXTAUTHZ_REDIS_PASSWORD", Key: "cache.redis_password", Secret: true},
		{Name: "EXTAUTHZ_ADMIN_TOKEN", Key: "admin.token", Secret: true},
		{Name: "EXTAUTHZ_LOG_LEVEL", Key: "log.level"},
		{Name: "EXTAUTHZ_LOG_FORMAT", Key: "log.format"},
	}
}

// defaultEnvResourceName names the resource when EXTAUTHZ_RESOURCE_NAME is
// not set: it is the resource label of the metrics and the Envoy
// context_extensions value.
const defaultEnvResourceName = "mcp"

// EnvConfigured reports whether the environment describes a resource
// (EXTAUTHZ_RESOURCE or OAUTH_RESOURCE_URI is set and not empty): the
// condition under which serve reads its configuration from the
// environment when no file is named.
func EnvConfigured(env LookupFunc) bool {
	for _, n := range []string{"EXTAUTHZ_RESOURCE", "OAUTH_RESOURCE_URI"} {
		if v, _ := env(n); v != "" {
			return true
		}
	}
	return false
}

// FromEnv builds a configuration from the variables of EnvVars, applies
// defaults and validates it. A variable set to the empty string counts as
// unset. Secrets are not read: the Config names their variables, resolved
// at start like any Secret. On failure the Errors name the variable in
// each path, as in "EXTAUTHZ_RESOURCE (resources[0].resource)".
func FromEnv(env LookupFunc) (*Config, error) {
	var errs Errors
	vals := map[string]string{} // by EXTAUTHZ_ name
	from := map[string]string{} // the name the value was read from
	for _, v := range EnvVars() {
		val, _ := env(v.Name)
		name := v.Name
		if v.Alias != "" {
			if a, _ := env(v.Alias); a != "" {
				switch {
				case val == "":
					val, name = a, v.Alias
				case a != val:
					errs = append(errs, &Error{Path: v.Name, Msg: fmt.Sprintf("differs from %s, which names the same setting: set one of them", v.Alias)})
				}
			}
		}
		if val != "" {
			vals[v.Name], from[v.Name] = val, name
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}

	c := &Config{
		PublicURL: vals["EXTAUTHZ_PUBLIC_URL"],
		Listen:    Listen{GRPC: vals["EXTAUTHZ_LISTEN_GRPC"], HTTP: vals["EXTAUTHZ_LISTEN_HTTP"], Admin: vals["EXTAUTHZ_LISTEN_ADMIN"]},
		Cache:     Cache{RedisURL: vals["EXTAUTHZ_REDIS_URL"]},
		Log:       Log{Level: vals["EXTAUTHZ_LOG_LEVEL"], Format: vals["EXTAUTHZ_LOG_FORMAT"]},
	}
	secret := func(n string) Secret {
		if _, ok := vals[n]; !ok {
			return Secret{}
		}
		return Secret{Env: from[n]}
	}
	c.Cache.RedisPassword = secret("EXTAUTHZ_REDIS_PASSWORD")
	c.Admin.Token = secret("EXTAUTHZ_ADMIN_TOKEN")

	r := Resource{
		Name:            vals["EXTAUTHZ_RESOURCE_NAME"],
		Resource:        vals["EXTAUTHZ_RESOURCE"],
		Hosts:           envList(vals["EXTAUTHZ_HOSTS"]),
		PathPrefix:      vals["EXTAUTHZ_PATH_PREFIX"],
		RequiredScopes:  envList(vals["EXTAUTHZ_REQUIRED_SCOPES"]),
		ScopesSupported: envList(vals["EXTAUTHZ_SCOPES_SUPPORTED"]),
		AllowedOrigins:  envList(vals["EXTAUTHZ_ALLOWED_ORIGINS"]),
		Audiences:       envList(vals["EXTAUTHZ_AUDIENCES"]),
	}
	if r.Name == "" {
		r.Name = defaultEnvResourceName
	}
	if v := vals["EXTAUTHZ_PUBLIC_PATHS"]; v != "" {
		var err error
		if r.Public, err = envPublicPaths(v); err != nil {
			return nil, Errors{{Path: from["EXTAUTHZ_PUBLIC_PATHS"] + " (resources[0].public)", Msg: err.Error()}}
		}
	}
	clientID := vals["EXTAUTHZ_INTROSPECTION_CLIENT_ID"]
	mode := vals["EXTAUTHZ_TOKEN_MODE"]
	if mode == "" && clientID != "" {
		// A client for introspection means opaque tokens are expected;
		// JWTs naming the issuer are still verified locally.
		mode = TokenModeAuto
	}
	for _, iss := range envList(vals["EXTAUTHZ_ISSUER"]) {
		as := AuthorizationServer{Issuer: iss, TokenMode: mode}
		if clientID != "" || vals["EXTAUTHZ_INTROSPECTION_ENDPOINT"] != "" || vals["EXTAUTHZ_INTROSPECTION_CLIENT_SECRET"] != "" {
			as.Introspection = Introspection{
				Endpoint:     vals["EXTAUTHZ_INTROSPECTION_ENDPOINT"],
				ClientID:     clientID,
				ClientSecret: secret("EXTAUTHZ_INTROSPECTION_CLIENT_SECRET"),
			}
		}
		r.AuthorizationServers = append(r.AuthorizationServers, as)
	}
	c.Resources = []Resource{r}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		es, _ := err.(Errors)
		return nil, envErrors(es, from)
	}
	return c, nil
}

// envList splits a list written in one variable: items separated by
// spaces, tabs, newlines and/or commas (scopes are space separated in
// OAuth, origins often comma separated).
func envList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
}

// envErrors names, in each error's path, the variable that set the key
// (or, for a key no variable sets, says so), so the operator knows what to
// change.
func envErrors(es Errors, from map[string]string) Errors {
	type prefix struct{ key, name string }
	var prefixes []prefix
	for _, v := range EnvVars() {
		// "resources[0].authorization_servers[].issuer" matches
		// resources[0].authorization_servers[2].issuer.
		prefixes = append(prefixes, prefix{v.Key, v.Name})
		if n, ok := from[v.Name]; ok {
			prefixes[len(prefixes)-1].name = n
		}
	}
	// Longest key first, so that ".introspection.client_id" wins over
	// ".authorization_servers[]".
	sort.SliceStable(prefixes, func(i, j int) bool { return len(prefixes[i].key) > len(prefixes[j].key) })
	out := make(Errors, len(es))
	for i, e := range es {
		ne := *e
		path := indexless(e.Path)
		for _, p := range prefixes {
			if path == p.key || strings.HasPrefix(path, p.key+".") || strings.HasPrefix(path, p.key+"[") {
				ne.Path = p.name + " (" + e.Path + ")"
				break
			}
		}
		if e.Path == "resources[0].authorization_servers" {
			ne.Path = "EXTAUTHZ_ISSUER (" + e.Path + ")"
		}
		out[i] = &ne
	}
	return out
}

// indexless writes the index of every list but the first resources[0] as
// "[]", the form EnvVar.Key uses.
func indexless(path string) string {
	head, rest, ok := strings.Cut(path, "resources[0].")
	if !ok || head != "" {
		return path
	}
	var b strings.Builder
	b.WriteString("resources[0].")
	for len(rest) > 0 {
		i := strings.IndexByte(rest, '[')
		if i < 0 {
			b.WriteString(rest)
			break
		}
		j := strings.IndexByte(rest[i:], ']')
		if j < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		b.WriteString("[]")
		rest = rest[i+j+1:]
	}
	return b.String()
}

// processEnvVars are the EXTAUTHZ_* variables of the command line rather
// than of the configuration.
var processEnvVars = []string{"EXTAUTHZ_CONFIG", "EXTAUTHZ_ADDR"}

// UnknownEnvVars returns the names of the EXTAUTHZ_* variables in environ
// ("NAME=value" entries, as os.Environ gives them) that nothing reads: a
// misspelt EXTAUTHZ_REQUIRED_SCOPE would otherwise leave the resource
// without the scopes the operator meant to require. Variables set to the
// empty string are not counted (they count as unset), nor are those
// Kubernetes injects for a Service named extauthz (EXTAUTHZ_SERVICE_HOST,
// EXTAUTHZ_PORT, EXTAUTHZ_PORT_9001_TCP...).
func UnknownEnvVars(environ []string) []string {
	known := map[string]bool{}
	for _, v := range EnvVars() {
		known[v.Name] = true
	}
	for _, n := range processEnvVars {
		known[n] = true
	}
	var out []string
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "EXTAUTHZ_") || val == "" || known[name] {
			continue
		}
		if strings.HasPrefix(name, "EXTAUTHZ_SERVICE_") || name == "EXTAUTHZ_PORT" || strings.HasPrefix(name, "EXTAUTHZ_PORT_") {
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// envPublicPaths reads EXTAUTHZ_PUBLIC_PATHS: entries separated by ";" or
// newlines, each "METHODS PATH" with the methods separated by commas, and
// a PATH ending in "/*" for a prefix: "GET,HEAD /mcp/health; GET /mcp/static/*".
func envPublicPaths(v string) ([]PublicPath, error) {
	var out []PublicPath
	for entry := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ';' || r == '\n' || r == '\r' }) {
		f := strings.Fields(entry)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf(`entry %q: write METHODS PATH, such as "GET,HEAD /mcp/health" (entries separated by ";")`, strings.TrimSpace(entry))
		}
		p := PublicPath{Path: f[1], Methods: strings.Split(f[0], ",")}
		if rest, ok := strings.CutSuffix(p.Path, "/*"); ok {
			p.Path, p.Prefix = rest, true
		}
		out = append(out, p)
	}
	return out, nil
}
