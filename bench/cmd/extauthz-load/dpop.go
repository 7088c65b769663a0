package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// dpopSubject is the sub claim of the dpop scenario's token, which the
// sampled answers must carry upstream.
const dpopSubject = "user-7f3c9a2e-4b1d-4c8e-9f6a-1d2e3f4a5b6c"

// dpopClient is the DPoP client of the dpop scenario (RFC 9449): one ES256
// key, one access token bound to it (cnf.jkt, §6.1), and a fresh proof
// (§4.2) for every request, written into a copy of the request's
// marshalled CheckRequest. Every proof of a client has the same length, so
// a request is the template with its placeholder overwritten: no
// marshalling per request.
type dpopClient struct {
	key    *ecdsa.PrivateKey
	jkt    string // RFC 7638 thumbprint of the public key, base64url
	token  string
	header string // the proof's JWS protected header, base64url: typ, alg, jwk
	ath    string // base64url(SHA-256(token)), RFC 9449 §4.2
	htm    string
	htu    string

	tmpl     []byte // the CheckRequest, its DPoP header a placeholder
	at       int    // the placeholder's offset in tmpl
	proofLen int

	jtiPrefix [8]byte
	jtiNext   atomic.Uint64

	maxAge time.Duration // dpop.max_age set in the gateway's config; 0: its default
}

// newDPoPClient makes a key, mints a token bound to it at iss and builds
// the request template: an MCP tools/call as Envoy sends it, with
// "Authorization: DPoP <token>" and a DPoP header.
func newDPoPClient(iss *issuer) (*dpopClient, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pt, err := key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, err
	}
	x, y := b64url(pt[1:33]), b64url(pt[33:65])
	// RFC 7638 §3.2: the required members only, in lexicographic order,
	// no whitespace.
	tp := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	d := &dpopClient{key: key, jkt: b64url(tp[:]), htm: "POST", htu: resourceURI}
	hdr, err := json.Marshal(map[string]any{
		"typ": "dpop+jwt", "alg": "ES256",
		"jwk": map[string]string{"kty": "EC", "crv": "P-256", "x": x, "y": y},
	})
	if err != nil {
		return nil, err
	}
	d.header = b64url(hdr)
	if _, err := rand.Read(d.jtiPrefix[:]); err != nil {
		return nil, err
	}
	d.token, err = iss.Mint(devissuer.Token{
		Subject:  dpopSubject,
		ClientID: "mcp-client-0a1b2c3d",
		Scopes:   []string{"mcp:tools", "mcp:resources", "openid", "profile"},
		TTL:      3 * time.Hour,
		Extra: map[string]any{"auth_time": time.Now().Unix(), "sid": strings.Repeat("s", 36), "acr": "urn:mace:incommon:iap:silver",
			"cnf": map[string]string{"jkt": d.jkt}},
	})
	if err != nil {
		return nil, err
	}
	ath := sha256.Sum256([]byte(d.token))
	d.ath = b64url(ath[:])

	first := d.proof(nil, time.Now())
	d.proofLen = len(first)
	placeholder := strings.Repeat("~", d.proofLen) // no base64url character: found only where it was put
	e := check.MCPToolCall(resourceURI, d.token)
	for i, kv := range e.Headers {
		if kv[0] == "authorization" {
			e.Headers[i][1] = "DPoP " + d.token
		}
	}
	e.Headers = append(e.Headers, [2]string{"dpop", placeholder})
	req, err := e.Proto()
	if err != nil {
		return nil, err
	}
	if d.tmpl, err = proto.Marshal(req); err != nil {
		return nil, err
	}
	if bytes.Count(d.tmpl, []byte(placeholder)) != 1 {
		return nil, errors.New("dpop: the proof placeholder is not found exactly once in the CheckRequest")
	}
	d.at = bytes.Index(d.tmpl, []byte(placeholder))
	return d, nil
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// proof appends to dst a new proof for the client's request, issued at
// now, with a jti no other proof of this client has: the client's random
// prefix and a counter.
func (d *dpopClient) proof(dst []byte, now time.Time) []byte {
	var jti [16]byte
	copy(jti[:8], d.jtiPrefix[:])
	binary.BigEndian.PutUint64(jti[8:], d.jtiNext.Add(1))
	var claims [256]byte
	c := append(claims[:0], `{"jti":"`...)
	c = base64.RawURLEncoding.AppendEncode(c, jti[:])
	c = append(c, `","htm":"`...)
	c = append(c, d.htm...)
	c = append(c, `","htu":"`...)
	c = append(c, d.htu...)
	c = append(c, `","iat":`...)
	c = strconv.AppendInt(c, now.Unix(), 10)
	c = append(c, `,"ath":"`...)
	c = append(c, d.ath...)
	c = append(c, `"}`...)

	start := len(dst)
	dst = append(dst, d.header...)
	dst = append(dst, '.')
	dst = base64.RawURLEncoding.AppendEncode(dst, c)
	sig, err := signES256(d.key, dst[start:])
	if err != nil {
		panic(err) // the system's random source failed: nothing sensible to send
	}
	dst = append(dst, '.')
	return base64.RawURLEncoding.AppendEncode(dst, sig[:])
}

// signES256 is the JWS ES256 signature of a signing input: R || S, 32
// bytes each (RFC 7518 §3.4), over its SHA-256 digest.
func signES256(key *ecdsa.PrivateKey, input []byte) ([64]byte, error) {
	var sig [64]byte
	digest := sha256.Sum256(input)
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return sig, err
	}
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return sig, nil
}

// proofPool is a batch of requests, each carrying its own proof; its
// memory is reused by the next fill.
type proofPool struct {
	buf  []byte
	reqs [][]byte
	took time.Duration
}

// fill makes n requests with fresh proofs, on every core.
func (d *dpopClient) fill(ctx context.Context, p *proofPool, n int) error {
	start := time.Now()
	size := len(d.tmpl)
	if cap(p.buf) < n*size {
		p.buf = make([]byte, n*size)
	}
	p.buf = p.buf[:n*size]
	p.reqs = p.reqs[:0]
	for i := range n {
		p.reqs = append(p.reqs, p.buf[i*size:(i+1)*size:(i+1)*size])
	}
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		badLen  atomic.Bool
		scratch = make([][]byte, runtime.NumCPU())
	)
	for w := range scratch {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				req := p.reqs[i]
				copy(req, d.tmpl)
				scratch[w] = d.proof(scratch[w][:0], time.Now())
				if len(scratch[w]) != d.proofLen {
					badLen.Store(true)
					return
				}
				copy(req[d.at:], scratch[w])
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if badLen.Load() {
		return errors.New("dpop: a proof's length differs from the template's")
	}
	p.took = time.Since(start)
	return nil
}

// config is the dpop block of the scenario's resource.
func (d *dpopClient) config() string {
	if d.maxAge > 0 {
		return fmt.Sprintf("    dpop: {mode: allowed, max_age: %s}\n", d.maxAge)
	}
	return "    dpop: {mode: allowed}\n"
}

// answerCheck is the check of the dpop scenario's sampled answers: an
// allowed answer whose subject header names the token's subject.
func (d *dpopClient) answerCheck() func(*authv3.CheckResponse) error {
	return func(resp *authv3.CheckResponse) error {
		ok := resp.GetOkResponse()
		if ok == nil {
			return errors.New("dpop: the answer has no OkHttpResponse")
		}
		for _, h := range ok.GetHeaders() {
			if strings.EqualFold(h.GetHeader().GetKey(), "x-extauthz-subject") {
				if v := h.GetHeader().GetValue(); v != dpopSubject {
					return fmt.Errorf("dpop: subject %q sent upstream, want %q", v, dpopSubject)
				}
				return nil
			}
		}
		return errors.New("dpop: the answer sets no x-extauthz-subject upstream")
	}
}

// replayRefused sends req, whose proof was already accepted, once more: a
// gateway that checks proofs refuses it (401, error invalid_dpop_proof in
// the DPoP challenge, RFC 9449 §11.1). Anything else is the error returned.
func replayRefused(ctx context.Context, conn *grpc.ClientConn, req []byte) error {
	a := &answer{whole: true}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.Invoke(cctx, checkMethod, &rawRequest{req}, a, forceRaw); err != nil {
		return fmt.Errorf("replayed proof: gRPC error: %w", err)
	}
	if a.ok() {
		return errors.New("replayed proof: ALLOWED, the proof was accepted twice")
	}
	den := a.full.GetDeniedResponse()
	if code := den.GetStatus().GetCode(); code != 401 {
		return fmt.Errorf("replayed proof: refused with HTTP %d, want 401", code)
	}
	for _, h := range den.GetHeaders() {
		if strings.EqualFold(h.GetHeader().GetKey(), "www-authenticate") &&
			strings.Contains(h.GetHeader().GetValue(), `error="invalid_dpop_proof"`) {
			return nil
		}
	}
	return errors.New(`replayed proof: refused without error="invalid_dpop_proof" in WWW-Authenticate`)
}

// rawVerifyCPU is the CPU time of one raw signature check of alg ("ES256":
// ecdsa.VerifyASN1 on P-256; "RS256": rsa.VerifyPKCS1v15 with a 2048-bit
// key; "EdDSA": ed25519.Verify of an 800-byte message, about a token's
// signing input, which Ed25519 hashes itself) on this machine, in µs: the
// floor under any verification of that algorithm. The digest of ES256 and
// RS256 is computed once, outside the loop. It is read from this thread's
// own CPU time (RUSAGE_THREAD), so time spent waiting for a core does not
// count, as it does not in the server's CPU per Check.
func rawVerifyCPU(alg string, n int) (float64, error) {
	verify, err := rawVerifier(alg)
	if err != nil {
		return 0, err
	}
	// A collection finished now charges none of its work (assists,
	// sweeping) to the loop: the pool just signed left garbage behind.
	runtime.GC()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for range 20 { // warm the caches and tables
		verify()
	}
	t0, err := threadCPU()
	if err != nil {
		return 0, err
	}
	// At least n checks, and on until rawVerifyMinCPU of this thread's time
	// has passed: the kernel may account a thread's time in ticks, and a
	// short loop (n RSA checks take a few ms) would read as 0 or 1 tick.
	done, t1 := 0, t0
	for done < n || t1-t0 < rawVerifyMinCPU {
		for range 50 {
			if !verify() {
				return 0, fmt.Errorf("raw verify %s: the signature does not verify", alg)
			}
		}
		done += 50
		if t1, err = threadCPU(); err != nil {
			return 0, err
		}
	}
	return float64(t1-t0) / float64(time.Microsecond) / float64(done), nil
}

// rawVerifyMinCPU is the least thread CPU time rawVerifyCPU measures over:
// 25 ticks of 10 ms or more of finer ones, so that the figure is within a
// few per cent however the kernel accounts it.
const rawVerifyMinCPU = 250 * time.Millisecond

// rawVerifier returns one raw check of a good signature of alg.
func rawVerifier(alg string) (func() bool, error) {
	digest := sha256.Sum256([]byte("a signing input"))
	switch alg {
	case "ES256":
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
		if err != nil {
			return nil, err
		}
		return func() bool { return ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) }, nil
	case "RS256":
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
		if err != nil {
			return nil, err
		}
		return func() bool { return rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], sig) == nil }, nil
	case "EdDSA":
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		msg := make([]byte, 800)
		sig := ed25519.Sign(priv, msg)
		return func() bool { return ed25519.Verify(pub, msg, sig) }, nil
	}
	return nil, fmt.Errorf("raw verify: no %q", alg)
}

// rawVerifyName names the function rawVerifyCPU times for alg.
func rawVerifyName(alg string) string {
	switch alg {
	case "RS256":
		return "rsa.VerifyPKCS1v15 (2048-bit, SHA-256 digest given)"
	case "EdDSA":
		return "ed25519.Verify (800-byte message)"
	}
	return "ecdsa.VerifyASN1 (P-256, SHA-256 digest given)"
}

// threadCPU is the calling thread's user and system time (Linux).
func threadCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// rawVerifyRounds is how many verifications rawVerifyCPU times: about
// 0.1 s of one core here.
const rawVerifyRounds = 2000

// dpopScenario runs hit's traffic with DPoP: one token, bound to the
// client's key, its verdict cached after the first Check; every Check
// carries a proof never sent before, which the gateway verifies (parse,
// thumbprint, signature, replay table in process: no Redis).
//
// Proofs are signed before they are sent, not while measuring: a P-256
// signature costs the client about a third of what the server's check
// does, on the cores the server runs on. Each run warms its fresh server
// with batches of proofs for warmDuration, then signs a pool for the
// measured part sized from the warm-up's rate (2 × rate × duration,
// capped by --max-requests), then measures it interleaved with a hit
// (measureInterleaved), timing the raw verify between slices; a run also
// ends if the pool runs out. Every proof is sent once; its iat is
// the time it was signed, seconds before it is sent.
func (h *harness) dpopScenario(ctx context.Context, sc *Scenario, round int) error {
	d := h.dp
	if d.maxAge > 0 {
		sc.note("The resource's dpop.max_age is %s (not the default 60 s), so that a proof signed before a run of --duration %s, interleaved with a hit's, is still fresh at its end.", d.maxAge, fmtDur(h.o.Duration))
	}
	sc.note("Every Check carries `Authorization: DPoP <token>` (the token bound to the client's ES256 key by cnf.jkt, %d bytes) and a DPoP proof of %d bytes (typ dpop+jwt, jwk, jti unique, htm %s, htu %s, iat when it was signed, ath): the resource has `dpop: {mode: allowed}`, no Redis (the replay table is in process). The CheckRequest is %d bytes.",
		len(d.token), d.proofLen, d.htm, d.htu, len(d.tmpl))
	sc.note("Proofs are signed by this tool on all cores before each measured part (a pool per run, below; each proof sent once), not while measuring; a run also ends if its pool runs out. Each run's fresh server is first warmed for %s with other proofs, whose rate sizes the pool: 2 × that rate × --duration.", fmtDur(h.warmDuration()))
	sc.note("Raw verify: the CPU time of one `ecdsa.VerifyASN1` (P-256, SHA-256 digest) in this tool, at least %d in a loop on one locked thread (RUSAGE_THREAD), timed up to %d times between the slices of each measured window while neither server is sent anything (the median); the gateway checks a proof's signature with that function.", rawVerifyRounds, maxBetween)
	sc.note("Besides its status, each caller's first answer of every run and every %dth after it is decoded in full and checked to set x-extauthz-subject to the token's subject. After each run, one proof of the run is sent again and must be refused (401, invalid_dpop_proof): the replay table is at work.", verifyEvery)
	sc.note("%s is the floor-tuned server and %s floor-tuned checking each proof's signature with the client's key and nothing else (floor-verify-server), both sent the run's proofs in the same window: what checking one proof costs a server that does nothing else, measured, beside the raw verify timed in a loop.", pairedFloorProofs, pairedVerifyProofs)
	der, err := x509.MarshalPKIXPublicKey(&d.key.PublicKey)
	if err != nil {
		return err
	}
	verifyArgs := []string{"--verify-alg", "ES256", "--verify-key", base64.StdEncoding.EncodeToString(der), "--verify-header", "dpop"}
	var warm, pool proofPool
	for _, c := range h.o.Concurrency {
		err := h.withServers(ctx, func() (*server, error) { return h.startExtauthzWith(ctx, "", 100_000, nil, nil, d) }, h.startHit(ctx),
			func(srv, ref *server, conn, refConn *grpc.ClientConn) error {
				return h.withServers(ctx, func() (*server, error) { return h.startSub(ctx, floorTunedCmd, nil) },
					func() (*server, error) { return h.startSub(ctx, floorVerifyCmd, nil, verifyArgs...) },
					func(ft, fv *server, ftConn, fvConn *grpc.ClientConn) error {
						return h.dpopRun(ctx, sc, round, c, &warm, &pool, [4]*server{srv, ref, ft, fv}, [4]*grpc.ClientConn{conn, refConn, ftConn, fvConn})
					})
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// dpopRun is one measured part of dpop at concurrency c: the gateway (0),
// the hit (1), floor-tuned (2) and floor-verify (3) in one window.
func (h *harness) dpopRun(ctx context.Context, sc *Scenario, round, c int, warm, pool *proofPool, srvs [4]*server, conns [4]*grpc.ClientConn) error {
	d := h.dp
	srv, conn := srvs[0], conns[0]
	warmErrs, rate, err := h.dpopWarm(ctx, sc, conn, c, warm)
	if err != nil {
		return err
	}
	n := int(2*rate*h.o.Duration.Seconds()) + 2*c
	n = min(max(n, 1000), h.o.MaxRequests)
	if err := d.fill(ctx, pool, n); err != nil {
		return err
	}
	sc.note("Round %d, c=%d: a pool of %s proofs signed in %s (warm-up rate %s Checks/s).", round, c, thousands(n), fmtDur(pool.took), thousands(int(rate)))
	var raws []float64
	timeRaw := func() error {
		raw, err := rawVerifyCPU("ES256", rawVerifyRounds)
		raws = append(raws, raw)
		return err
	}
	// The floors are sent the same proofs, over and over: neither
	// remembers a jti.
	proofs := pattern{reqs: pool.reqs}
	rs, err := h.measureInterleavedN(ctx, []measurement{
		{sc: sc, target: "extauthz serve", conc: c, srv: srv, conn: conn,
			pat: pattern{reqs: pool.reqs, distinct: true, verify: d.answerCheck()}},
		h.hitRef(sc, c, srvs[1], conns[1]),
		{sc: sc, target: pairedFloorProofs, conc: c, srv: srvs[2], conn: conns[2], steady: true, pat: proofs},
		{sc: sc, target: pairedVerifyProofs, conc: c, srv: srvs[3], conn: conns[3], steady: true, pat: proofs},
	}, timeRaw)
	if err != nil {
		return err
	}
	r := rs[0]
	r.WarmErrors += warmErrs
	r.RawVerify = median(raws)
	if err := replayRefused(ctx, conn, pool.reqs[0]); err != nil {
		r.Errors++
		sc.note("extauthz serve c=%d: %v", c, err)
	}
	return nil
}

// The target names of the two floors measured within dpop, sent its
// proofs in the same window as the gateway.
const (
	pairedFloorProofs  = "floor-tuned, same proofs"
	pairedVerifyProofs = "floor-verify, same proofs"
)

// dpopWarm drives a fresh server with batches of new proofs for
// warmDuration, and returns the warm-up's errors and the last batch's
// rate in Checks/s.
func (h *harness) dpopWarm(ctx context.Context, sc *Scenario, conn *grpc.ClientConn, c int, p *proofPool) (errs int, rate float64, err error) {
	var warmed time.Duration
	n := max(200, 4*c)
	for warmed < h.warmDuration() {
		if err := h.dp.fill(ctx, p, n); err != nil {
			return errs, 0, err
		}
		res := h.drive(ctx, conn, c, time.Minute, n, pattern{reqs: p.reqs, distinct: true}, nil, nil)
		if err := ctx.Err(); err != nil {
			return errs, 0, err
		}
		errs += res.errors
		for _, e := range res.errSample {
			sc.note("extauthz serve c=%d warm-up error: %s", c, e)
		}
		if res.requests == 0 || res.elapsed <= 0 {
			return errs, 0, fmt.Errorf("warm-up: no Check made (%s)", res.stop)
		}
		warmed += res.elapsed
		rate = float64(res.requests) / res.elapsed.Seconds()
		n = max(200, 4*c, min(int(rate*(h.warmDuration()-warmed).Seconds()), h.o.MaxRequests))
	}
	return errs, rate, nil
}
