package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// floorVerifyServer is floor-tuned that checks one signature per request and
// does nothing else: the limit of a verifying server, measured rather than
// added up. It reads one header, takes the JWS in it (after the scheme, for
// Authorization), decodes the signature, hashes the signing input and calls
// the same crypto function the raw verify times, with a key given at start.
// No claim is read, no key is looked up, nothing is cached: whatever a real
// verifier does beyond this is its own work.
//
// Summing floor-tuned's CPU per Check and the raw verify timed in a quiet
// loop (the limit issue #20 states) leaves out what the signature check
// costs inside a busy server, where it shares the cores' caches with the
// gRPC work around it. This server pays that, as any verifier must.
type floorVerifyServer struct {
	authv3.UnimplementedAuthorizationServer
	header string
	verify func(input string, sig []byte) bool
}

// verifyFlags configure floor-verify-server (and floor-get-server: redis, client).
type verifyFlags struct {
	alg    string // RS256, ES256 or EdDSA
	key    string // base64 (standard) of the public key's PKIX DER
	header string // authorization or dpop
	redis  string // floor-get-server: redis-server's address
	client string // floor-get-server: rueidis or go-redis
}

func newFloorVerifyServer(v verifyFlags) (*floorVerifyServer, error) {
	if v.header != "authorization" && v.header != "dpop" {
		return nil, fmt.Errorf("--verify-header %q: want authorization or dpop", v.header)
	}
	der, err := base64.StdEncoding.DecodeString(v.key)
	if err != nil {
		return nil, fmt.Errorf("--verify-key: %w", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("--verify-key: %w", err)
	}
	verify, err := rawJWSVerifier(v.alg, pub)
	if err != nil {
		return nil, err
	}
	return &floorVerifyServer{header: v.header, verify: verify}, nil
}

// rawJWSVerifier checks a JWS signature of alg over its signing input with
// pub, as the raw verify of that alg does (rawVerifier).
func rawJWSVerifier(alg string, pub crypto.PublicKey) (func(string, []byte) bool, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if alg == "RS256" {
			return func(input string, sig []byte) bool {
				d := sha256.Sum256([]byte(input))
				return rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], sig) == nil
			}, nil
		}
	case *ecdsa.PublicKey:
		if alg == "ES256" {
			return func(input string, sig []byte) bool {
				if len(sig) != 64 {
					return false
				}
				d := sha256.Sum256([]byte(input))
				var der [72]byte
				return ecdsa.VerifyASN1(k, d[:], appendDERSignature(der[:0], sig[:32], sig[32:]))
			}, nil
		}
	case ed25519.PublicKey:
		if alg == "EdDSA" {
			return func(input string, sig []byte) bool { return ed25519.Verify(k, []byte(input), sig) }, nil
		}
	}
	return nil, fmt.Errorf("--verify-alg %q does not go with a %T key", alg, pub)
}

// appendDERSignature appends the ASN.1 DER form of the ECDSA signature (r,
// s), each a big-endian number of at most 32 bytes: SEQUENCE { INTEGER r,
// INTEGER s }. It allocates nothing when b has room.
func appendDERSignature(b, r, s []byte) []byte {
	r, s = trimZeros(r), trimZeros(s)
	b = append(b, 0x30, byte(derIntegerLen(r)+derIntegerLen(s)))
	return appendDERInteger(appendDERInteger(b, r), s)
}

// trimZeros drops n's leading zero bytes, keeping one byte at least.
func trimZeros(n []byte) []byte {
	for len(n) > 1 && n[0] == 0 {
		n = n[1:]
	}
	return n
}

// derIntegerLen is the length of the DER INTEGER of the unsigned n, its
// leading zeros trimmed: tag, length, a zero when the top bit is set, n.
func derIntegerLen(n []byte) int { return 2 + int(n[0]>>7) + len(n) }

// appendDERInteger appends the DER INTEGER of the unsigned n (at most 125
// bytes, leading zeros trimmed).
func appendDERInteger(b, n []byte) []byte {
	b = append(b, 0x02, byte(derIntegerLen(n)-2))
	if n[0]&0x80 != 0 {
		b = append(b, 0)
	}
	return append(b, n...)
}

var errNoJWS = errors.New("no JWS in the header")

func (s *floorVerifyServer) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	v := req.GetAttributes().GetRequest().GetHttp().GetHeaders()[s.header]
	if s.header == "authorization" {
		_, v, _ = strings.Cut(v, " ")
	}
	dot := strings.LastIndexByte(v, '.')
	if dot < 0 {
		return denied(errNoJWS.Error()), nil
	}
	var buf [512]byte
	seg := v[dot+1:]
	if base64.RawURLEncoding.DecodedLen(len(seg)) > len(buf) {
		return denied("signature too long"), nil
	}
	// A signature that is not base64url is as bad as one that fails.
	if n, err := base64.RawURLEncoding.Decode(buf[:], []byte(seg)); err == nil && s.verify(v[:dot], buf[:n]) {
		return allowed, nil
	}
	return denied("bad signature"), nil
}
