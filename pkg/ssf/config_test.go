package ssf_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/ssf"
)

const policy = `
ssf:
  audience: "https://gateway.example.com/ssf"
  max_age: 30m
  leeway: 0s
  transmitters:
    - issuer: "https://idp.example.com"
      push_token: {env: SSF_TEST_PUSH_TOKEN}
      algorithms: [ES256]
      subject_claims: {email: upn}
      token_issuer: "https://auth.example.com"
    - issuer: "https://signals.example.net/t/7"
      jwks_uri: "https://signals.example.net/keys"
      poll: {endpoint: "https://signals.example.net/poll", token: {env: SSF_TEST_POLL_TOKEN}, max_events: 20}
resources:
  - name: mcp
    resource: "https://mcp.example.com/mcp"
    authorization_servers: [{issuer: "https://auth.example.com"}]
`

// The policy file's ssf section as the receiver's options: the push token
// read from its variable, 0s leeway kept as none.
func TestOptionsFromConfig(t *testing.T) {
	t.Setenv("SSF_TEST_PUSH_TOKEN", "tok-123")
	t.Setenv("SSF_TEST_POLL_TOKEN", "poll-456")
	c, err := config.Parse([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	o, ok, err := ssf.OptionsFromConfig(c)
	if err != nil || !ok {
		t.Fatalf("OptionsFromConfig: %v %v", ok, err)
	}
	if o.Audience != "https://gateway.example.com/ssf" || o.MaxAge != 30*time.Minute || o.Leeway >= 0 || o.MaxBytes != 65536 ||
		o.JWKS.MaxRefresh != time.Hour {
		t.Fatalf("options %+v", o)
	}
	want := []ssf.Transmitter{
		{Issuer: "https://idp.example.com", PushToken: "tok-123", Algorithms: []string{"ES256"},
			Subjects: ssf.SubjectClaims{Email: "upn", Opaque: "sub"}, TokenIssuer: "https://auth.example.com"},
		{Issuer: "https://signals.example.net/t/7", JWKSURI: "https://signals.example.net/keys",
			Algorithms: ssf.DefaultAlgorithms, Subjects: ssf.SubjectClaims{Email: "email", Opaque: "sub"},
			Poll: &ssf.Poll{Endpoint: "https://signals.example.net/poll", Token: "poll-456", Interval: 30 * time.Second, MaxEvents: 20}},
	}
	if !reflect.DeepEqual(o.Transmitters, want) {
		t.Fatalf("transmitters %+v\nwant %+v", o.Transmitters, want)
	}
	o.Revoker = &recorder{}
	if _, err := ssf.New(o); err != nil {
		t.Fatal(err)
	}

	// A token that cannot be read names its key.
	t.Setenv("SSF_TEST_POLL_TOKEN", "")
	if _, _, err := ssf.OptionsFromConfig(c); err == nil || !strings.HasPrefix(err.Error(), "ssf.transmitters[1].poll.token: ") {
		t.Fatalf("unreadable poll token: %v", err)
	}
	t.Setenv("SSF_TEST_PUSH_TOKEN", "")
	if _, _, err := ssf.OptionsFromConfig(c); err == nil || !strings.HasPrefix(err.Error(), "ssf.transmitters[0].push_token: ") {
		t.Fatalf("unreadable token: %v", err)
	}
	// No transmitters: off.
	c.SSF.Transmitters = nil
	if _, ok, err := ssf.OptionsFromConfig(c); ok || err != nil {
		t.Fatalf("no transmitters: %v %v", ok, err)
	}
}
