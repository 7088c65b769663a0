package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/extproc"
)

// TestExtProcOnTheGRPCListener: with ext_proc.enabled the gateway's one
// gRPC listener serves the external processor beside the Check; the
// Check's dynamic metadata, as Envoy forwards it, decides what a listing
// shows; the metric counts what was removed. Without it, the service is
// not there.
func TestExtProcOnTheGRPCListener(t *testing.T) {
	iss, _ := startIssuer(t, "https://mcp.example.com/mcp")
	policy := fmt.Sprintf(`
resources:
  - name: mcp
    resource: "https://mcp.example.com/mcp"
    rules: [{method: tools/call, name: "admin_*", scopes: ["mcp:admin"]}]
    authorization_servers: [{issuer: %q}]
`, iss.Issuer())
	off := startGateway(t, policy)
	_, err := processOnce(t, off, nil)
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("ext_proc disabled: %v, want Unimplemented", err)
	}

	g := startGateway(t, "ext_proc: {enabled: true, max_body_bytes: 4096}\n"+policy)
	tok, err := iss.Mint(devissuer.Token{Subject: "u", ClientID: "c", Scopes: []string{"mcp:read"}})
	if err != nil {
		t.Fatal(err)
	}
	req, err := check.EnvoyRequest{Method: "POST", URL: "https://mcp.example.com/mcp",
		Headers: [][2]string{{"authorization", "Bearer " + tok}}, Body: []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)}.Proto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := g.client.Check(context.Background(), req)
	if err != nil || resp.GetStatus().GetCode() != 0 {
		t.Fatalf("Check: %v %v", err, resp)
	}
	body, err := processOnce(t, g, resp.GetDynamicMetadata())
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"}]}}`; body != want {
		t.Errorf("listing %s, want %s", body, want)
	}
	r, err := http.Get("http://" + g.app.lnAdmin.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	m, _ := io.ReadAll(r.Body)
	if !strings.Contains(string(m), `extauthz_extproc_entries_removed_total{kind="tools"} 1`) {
		t.Errorf("/metrics lacks the removed tool:\n%s", grepLines(string(m), "extproc"))
	}
}

// processOnce sends one JSON listing through the external processor as
// Envoy does (response headers, then the BUFFERED body) with md as the
// ext_authz namespace, and returns the body the client gets.
func processOnce(t *testing.T, g *gateway, md *structpb.Struct) (string, error) {
	t.Helper()
	conn, err := grpc.NewClient(g.app.lnGRPC.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := extprocv3.NewExternalProcessorClient(conn).Process(context.Background())
	if err != nil {
		return "", err
	}
	meta := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{extproc.Namespace: md}}
	hdr := &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("application/json")}}}
	// A stream the server refuses fails Send with io.EOF; Recv has why.
	_ = st.Send(&extprocv3.ProcessingRequest{MetadataContext: meta, Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdr}}})
	if _, err := st.Recv(); err != nil {
		return "", err
	}
	listing := `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"admin_reset"},{"name":"echo"}]}}`
	if err := st.Send(&extprocv3.ProcessingRequest{MetadataContext: meta, Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte(listing), EndOfStream: true}}}); err != nil {
		return "", err
	}
	resp, err := st.Recv()
	if err != nil {
		return "", err
	}
	// The stream ends when the server has finished with it (and recorded
	// its metrics).
	if err := st.CloseSend(); err != nil {
		return "", err
	}
	if _, err := st.Recv(); err != io.EOF {
		return "", fmt.Errorf("stream end: %v", err)
	}
	if b := resp.GetResponseBody().GetResponse().GetBodyMutation().GetBody(); b != nil {
		return string(b), nil
	}
	return listing, nil
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
