package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/extauthz/extauthz/pkg/check"
)

// headerFlags collects repeated --header "Name: value" flags.
type headerFlags [][2]string

func (h *headerFlags) String() string { return fmt.Sprint(*h) }

func (h *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return errors.New(`want "Name: value"`)
	}
	*h = append(*h, [2]string{strings.TrimSpace(name), strings.TrimSpace(value)})
	return nil
}

// checkCmd sends one CheckRequest shaped as Envoy sends it and prints the
// answer: the operator's tool to see what the gateway decides and why.
// Exit status: 0 allowed, 1 not allowed, 2 the check could not be made.
func checkCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr("EXTAUTHZ_ADDR", "127.0.0.1:9001"), "gRPC address of the gateway (env EXTAUTHZ_ADDR)")
	url := fs.String("url", "", "request URL as the client sent it (required)")
	method := fs.String("method", "GET", "request method")
	tok := fs.String("token", "", "bearer token to send in Authorization")
	resource := fs.String("resource", "", "context_extensions resource name, as an Envoy route may set it")
	raw := fs.Bool("raw-headers", false, "send header_map as Envoy does with encode_raw_headers: true")
	body := fs.String("body", "", "request body, as Envoy sends it with with_request_body")
	timeout := fs.Duration("timeout", 5*time.Second, "deadline for the Check")
	var headers headerFlags
	fs.Var(&headers, "header", `extra request header "Name: value" (repeatable)`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *url == "" {
		fmt.Fprintln(stderr, "check: --url is required")
		return 2
	}
	if *tok != "" {
		headers = append(headers, [2]string{"authorization", "Bearer " + *tok})
	}
	er := check.EnvoyRequest{Method: *method, URL: *url, Headers: headers, RawHeaders: *raw, Body: []byte(*body)}
	if *resource != "" {
		er.ContextExtensions = map[string]string{"resource": *resource}
	}
	req, err := er.Proto()
	if err != nil {
		fmt.Fprintf(stderr, "check: %v\n", err)
		return 2
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintf(stderr, "check: %v\n", err)
		return 2
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(cctx, req)
	if err != nil {
		fmt.Fprintf(stderr, "check: %s: %v\n", *addr, err)
		return 2
	}
	printResponse(stdout, resp)
	if resp.GetStatus().GetCode() == 0 {
		return 0
	}
	return 1
}

func printResponse(w io.Writer, resp *authv3.CheckResponse) {
	if ok := resp.GetOkResponse(); resp.GetStatus().GetCode() == 0 {
		fmt.Fprintln(w, "decision: ALLOW")
		fmt.Fprintln(w, "upstream request headers set:")
		for _, h := range ok.GetHeaders() {
			k, v := h.GetHeader().GetKey(), h.GetHeader().GetValue()
			if strings.EqualFold(k, "authorization") {
				// The minted upstream credential (upstream_token): a live
				// token, never printed, only described.
				v = describeUpstreamCredential(v)
			}
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
		if rm := ok.GetHeadersToRemove(); len(rm) > 0 {
			fmt.Fprintf(w, "upstream request headers removed: %s\n", strings.Join(rm, ", "))
		}
		if md := resp.GetDynamicMetadata(); md != nil {
			b, _ := protojson.Marshal(md)
			fmt.Fprintf(w, "dynamic metadata: %s\n", b)
		}
		return
	}
	d := resp.GetDeniedResponse()
	status := d.GetStatus().GetCode()
	if status == 0 {
		status = 403 // Envoy's default for a denial without a status
	}
	if status < 400 {
		// A direct answer, such as the metadata document.
		fmt.Fprintln(w, "decision: RESPOND (the gateway answers the client itself)")
	} else {
		fmt.Fprintln(w, "decision: DENY")
	}
	fmt.Fprintf(w, "status: %d\n", status)
	var lines []string
	for _, h := range d.GetHeaders() {
		lines = append(lines, fmt.Sprintf("%s: %s", h.GetHeader().GetKey(), h.GetHeader().GetValue()))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	if b := d.GetBody(); b != "" {
		fmt.Fprintf(w, "body: %s\n", b)
	}
}

// describeUpstreamCredential redacts an Authorization value the gateway
// sets upstream: its scheme, the token's length and a short SHA-256 prefix
// (to compare with logs or another run), and, for a JWT, the claims an
// operator checks (read without verifying: the gateway verified it).
func describeUpstreamCredential(v string) string {
	scheme, tok, found := strings.Cut(v, " ")
	if !found {
		return "[redacted]"
	}
	sum := sha256.Sum256([]byte(tok))
	out := fmt.Sprintf("%s [redacted upstream credential: %d bytes, sha256 %x…", scheme, len(tok), sum[:6])
	if parts := strings.Split(tok, "."); len(parts) == 3 {
		if payload, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var c struct {
				Iss   string          `json:"iss"`
				Sub   string          `json:"sub"`
				Aud   json.RawMessage `json:"aud"`
				Scope string          `json:"scope"`
				Exp   int64           `json:"exp"`
				Act   json.RawMessage `json:"act"`
			}
			if json.Unmarshal(payload, &c) == nil {
				out += fmt.Sprintf("; JWT iss %s, sub %s, aud %s", c.Iss, c.Sub, c.Aud)
				if c.Scope != "" {
					out += ", scope " + strconv.Quote(c.Scope)
				}
				if c.Exp > 0 {
					out += ", exp " + time.Unix(c.Exp, 0).UTC().Format(time.RFC3339)
				}
				if len(c.Act) > 0 {
					out += fmt.Sprintf(", act %s", c.Act)
				}
			}
		}
	}
	return out + "]"
}
