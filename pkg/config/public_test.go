package config

import (
	"strings"
	"testing"
)

func TestPublicPaths(t *testing.T) {
	c, err := Load("testdata/valid-public.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Resources[0].Public; len(got) != 2 || got[0].Prefix || !got[1].Prefix || strings.Join(got[0].Methods, ",") != "GET,HEAD" {
		t.Errorf("public = %+v", got)
	}

	_, err = Load("testdata/invalid-public.yaml")
	want := strings.TrimSpace(`
resources[0].public[0].path: must be under the resource's path_prefix "/mcp"
resources[0].public[1].path: is not in canonical form; write "/mcp/health"
resources[0].public[1].methods[0]: must be a method name in upper case, as sent (GET, HEAD, POST...)
resources[0].public[2].path: must be a plain path starting with "/": no control characters, spaces, "\", ";", malformed or escaped control percent-escapes
resources[0].public[2].methods[1]: "GET" is already listed at resources[0].public[2].methods[0]
resources[0].public[3].path: a prefix is written without a trailing slash (it matches on whole segments)
resources[0].public[4].prefix: would make the whole resource public; list the public paths under it
resources[0].public[5].path: must be under the resource's path_prefix "/mcp"
resources[0].public[5].methods[0]: must be a method name in upper case, as sent (GET, HEAD, POST...)
resources[0].public[6].methods: list the methods that pass without a token, such as [GET, HEAD]
resources[0].public[8].path: "/mcp/h" is already listed at resources[0].public[7]
resources[0].public[9].path: required`)
	if err == nil || err.Error() != want {
		t.Errorf("errors:\n%v\nwant:\n%s", err, want)
	}
}
