package httpauthz

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestHeaderBody: a denial's JSON body travels to nginx in a header: it
// must stay the same JSON value, in printable ASCII only (no CR, LF or
// byte a proxy could split or refuse), whatever a JSON-RPC error echoes
// back from the request (an id, a name).
func TestHeaderBody(t *testing.T) {
	for _, body := range []string{
		`{"error":"invalid_token","error_description":"the token is expired"}`,
		"{\n  \"jsonrpc\": \"2.0\",\n  \"id\": \"caf\u00e9 \U0001F600\",\r\n \"error\": {\"code\": -32020, \"message\": \"a\\nb\\u2028\x7f\"}\n}",
		`{"id":"\u0000"}`,
		`[]`,
	} {
		got := headerBody([]byte(body), 400)
		for i := 0; i < len(got); i++ {
			if got[i] < 0x20 || got[i] > 0x7e {
				t.Errorf("headerBody(%q) = %q: byte %#x at %d", body, got, got[i], i)
			}
		}
		var want, have any
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(got), &have); err != nil {
			t.Errorf("headerBody(%q) = %q, not JSON: %v", body, got, err)
			continue
		}
		wb, _ := json.Marshal(want)
		hb, _ := json.Marshal(have)
		if string(wb) != string(hb) {
			t.Errorf("headerBody(%q) = %q decodes to %s, want %s", body, got, hb, wb)
		}
	}

	// Not JSON, or too long: a short JSON body, never the raw bytes.
	for _, body := range []string{"not json\r\nX-Injected: 1", `{"id":"` + strings.Repeat("x", MaxBodyHeader) + `"}`} {
		got := headerBody([]byte(body), 400)
		var v map[string]string
		if err := json.Unmarshal([]byte(got), &v); err != nil || v["error"] == "" || strings.Contains(got, "X-Injected") || len(got) > 200 {
			t.Errorf("headerBody(%.40q…) = %q, want a short JSON error", body, got)
		}
	}
}
