package extproc

import (
	"math"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/extauthz/extauthz/pkg/authz"
)

// Namespace is the dynamic metadata namespace the Check's allowed answers
// land in (Envoy files an ext_authz filter's dynamic metadata under the
// filter's name), which Envoy's ext_proc filter must forward:
// metadata_options.forwarding_namespaces.untyped: [envoy.filters.http.ext_authz].
const Namespace = "envoy.filters.http.ext_authz"

// callerFrom reads the caller and the resource the Check decided for from
// the forwarded dynamic metadata (pkg/check writes resource, iss, sub,
// client_id, scope, aud, exp). ok is false when the namespace is absent or
// a member has the wrong type: a listing is then refused, not guessed at.
func callerFrom(md *corev3.Metadata) (resource string, c *authz.Caller, ok bool) {
	st := md.GetFilterMetadata()[Namespace]
	if st == nil {
		return "", nil, false
	}
	f := st.GetFields()
	resource, ok = str(f["resource"])
	if !ok || resource == "" {
		return "", nil, false
	}
	c = &authz.Caller{}
	for _, m := range []struct {
		key string
		dst *string
	}{{"iss", &c.Issuer}, {"sub", &c.Subject}, {"client_id", &c.ClientID}} {
		if v, present := f[m.key]; present {
			if *m.dst, ok = str(v); !ok {
				return "", nil, false
			}
		}
	}
	for _, m := range []struct {
		key string
		dst *[]string
	}{{"scope", &c.Scopes}, {"aud", &c.Audience}} {
		if v, present := f[m.key]; present {
			if *m.dst, ok = strList(v); !ok {
				return "", nil, false
			}
		}
	}
	if v, present := f["exp"]; present {
		n, isNum := v.GetKind().(*structpb.Value_NumberValue)
		if !isNum || math.IsNaN(n.NumberValue) || n.NumberValue < 0 || n.NumberValue > 1<<53 {
			return "", nil, false
		}
		if n.NumberValue > 0 {
			c.Expiry = time.Unix(int64(n.NumberValue), 0)
		}
	}
	return resource, c, true
}

func str(v *structpb.Value) (string, bool) {
	s, ok := v.GetKind().(*structpb.Value_StringValue)
	if !ok {
		return "", false
	}
	return s.StringValue, true
}

func strList(v *structpb.Value) ([]string, bool) {
	l, ok := v.GetKind().(*structpb.Value_ListValue)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(l.ListValue.GetValues()))
	for _, e := range l.ListValue.GetValues() {
		s, ok := str(e)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}
