package config

import (
	"strings"
	"testing"
)

func TestPublicPaths(t *testing.T) {
	// The invalid ones are in TestLoadInvalid (invalid-public.yaml).
	c, err := Load("testdata/valid-public.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Resources[0].Public; len(got) != 2 || got[0].Prefix || !got[1].Prefix || strings.Join(got[0].Methods, ",") != "GET,HEAD" {
		t.Errorf("public = %+v", got)
	}
}
