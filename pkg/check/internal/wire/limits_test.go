package wire_test

import (
	"fmt"
	"runtime"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check/internal/wire"
)

// TestHeaderLimitsCostLittle: a CheckRequest sent straight to the gRPC
// listener may hold far more headers than Envoy would send. Decoding one
// must not cost a map of them all, and repeated header_map entries must
// be merged in linear time (they were concatenated, each copy of the
// growing value costing its length: 10,000 one-byte entries allocated
// 100 MB).
func TestHeaderLimitsCostLittle(t *testing.T) {
	var entries, mapEntries [][]byte
	for i := range 100000 {
		mapEntries = append(mapEntries, fbytes(3, entry(fmt.Sprint("h", i), "v")))
	}
	for range 10000 {
		entries = append(entries, fbytes(1, headerValue("x-a", "v", nil)))
	}
	manyNames := withHTTP(mapEntries...)
	oneName := withHTTP(fbytes(13, entries...))
	for _, tc := range []struct {
		name   string
		b      []byte
		over   bool
		budget uint64
	}{
		{"100,000 headers", manyNames, true, 1 << 20},
		{"10,000 header_map entries of one name", oneName, false, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			differential(t, tc.b)
			var r authz.Request
			var err error
			n := allocated(func() { err = wire.DecodeRequest(tc.b, &r) })
			if (err != nil) != tc.over {
				t.Fatalf("DecodeRequest: %v", err)
			}
			t.Logf("DecodeRequest of %d bytes allocated %d bytes", len(tc.b), n)
			if n > tc.budget {
				t.Errorf("DecodeRequest allocated %d bytes, want under %d", n, tc.budget)
			}
			var msg authv3.CheckRequest
			if err := proto.Unmarshal(tc.b, &msg); err != nil {
				t.Fatal(err)
			}
			n = allocated(func() { r = wire.Translate(&msg) })
			t.Logf("Translate allocated %d bytes", n)
			if !tc.over && n > tc.budget {
				t.Errorf("Translate allocated %d bytes, want under %d", n, tc.budget)
			}
		})
	}
}

// allocated is how many bytes f allocates (all goroutines: an upper
// bound for f's own).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
