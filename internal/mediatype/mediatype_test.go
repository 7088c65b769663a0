package mediatype

import "testing"

func TestIsApplication(t *testing.T) {
	for typ, want := range map[string]bool{
		"dpop+jwt": true, "DPoP+JWT": true, "application/dpop+jwt": true, "Application/DPOP+jwt": true,
		"application/": false, "dpop+jwt ": false, "dpop+jwt;v=1": false, "application/application/dpop+jwt": false,
		"dpop+jwт": false, "text/dpop+jwt": false, "": false, "dpop+jw\u212a": false,
	} {
		if got := IsApplication(typ, "dpop+jwt"); got != want {
			t.Errorf("IsApplication(%q) = %v, want %v", typ, got, want)
		}
	}
}
