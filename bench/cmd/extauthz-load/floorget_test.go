package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/extauthz/extauthz/internal/redisproc"
)

// TestFloorGetServer: floor-get-server, with either client, allows a token
// only when its Redis answered: the first sight sets the token's value, the
// next reads it (the GET the limit is made of), and a Redis that is gone, or
// a request with no token, is a denial, never an allow that would make the
// limit an always-allow server's.
func TestFloorGetServer(t *testing.T) {
	for _, client := range []string{floorGetRueidis, floorGetGoRedis} {
		t.Run(client, func(t *testing.T) {
			ctx := context.Background()
			rs, err := redisproc.Start(ctx, redisproc.Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatalf("redis-server (the CI installs it): %v", err)
			}
			stopped := false
			t.Cleanup(func() {
				if !stopped {
					rs.Stop()
				}
			})
			fg, err := newFloorGetServer(rs.Addr(), client)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(fg.Close)
			tok := "eyJhbGciOiJSUzI1NiJ9.e30." + strings.Repeat("a", 20) + strings.Repeat("Z", floorGetKeyChars)
			check := func(headers map[string]string) codes.Code {
				t.Helper()
				resp, err := fg.Check(ctx, checkHeaders(headers))
				if err != nil {
					t.Fatal(err)
				}
				return codes.Code(resp.GetStatus().GetCode())
			}
			bearer := map[string]string{"authorization": "Bearer " + tok}
			if got := check(bearer); got != codes.OK {
				t.Fatalf("first sight: %v, want OK (the value set)", got)
			}
			v, err := redisproc.Do(rs.Addr(), 5*time.Second, "GET", floorGetPrefix+tok[len(tok)-floorGetKeyChars:])
			if s, ok := v.(string); err != nil || !ok || len(s) != floorGetValueBytes {
				t.Fatalf("the token's value in Redis: %v (%v), want %d bytes", v, err, floorGetValueBytes)
			}
			if got := check(bearer); got != codes.OK {
				t.Fatalf("second sight: %v, want OK (read back)", got)
			}
			for _, h := range []map[string]string{{}, {"authorization": "Basic " + tok}, {"authorization": "Bearer short"}} {
				if got := check(h); got == codes.OK {
					t.Errorf("headers %v: allowed", h)
				}
			}
			rs.Stop()
			stopped = true
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			resp, err := fg.Check(rctx, checkHeaders(bearer))
			if err != nil {
				t.Fatal(err)
			}
			if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
				t.Error("allowed with its Redis gone")
			}
		})
	}
	if _, err := newFloorGetServer("127.0.0.1:1", "another"); err == nil {
		t.Error("an unknown client accepted")
	}
	if _, err := newFloorGetServer("192.0.2.1:6379", floorGetGoRedis); err == nil {
		t.Error("a Redis off loopback accepted")
	}
}
