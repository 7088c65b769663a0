// Package policy compiles and evaluates CEL authorization policies.
//
// Operators attach policies, written as CEL (https://cel.dev) expressions, to
// protected resources and MCP rules in the YAML configuration. Every policy is
// parsed and type-checked when the configuration is loaded, so a misspelt
// variable or field, a syntax error or an expression that is not a bool is
// reported with its 1-based line and column before the gateway serves a
// single request. At request time a policy is evaluated against the verified
// access token, the HTTP request and the MCP operation; it allows the request
// only when it evaluates to true. Evaluation never fails open: Eval returns an
// error for any failure (a missing map key, an integer overflow, the cost
// limit, a cancelled context...) and the caller denies the request.
//
// # Variables
//
// A policy sees exactly three variables. Their fields are type-checked: a
// reference to an unknown field such as token.sbu is a compile error.
//
//	token.sub        string              subject
//	token.iss        string              issuer
//	token.client_id  string              OAuth client id
//	token.aud        list(string)        audiences
//	token.scopes     list(string)        granted scopes
//	token.exp        timestamp           expiry; timestamp(0), the Unix epoch, when unknown
//
//	request.method   string              HTTP method, e.g. "POST"
//	request.host     string              HTTP host (":authority")
//	request.path     string              HTTP path, without the query string
//	request.headers  map(string, string) request headers; names are lower-case
//	                                     and repeated headers are joined with ","
//
//	mcp.method       string              JSON-RPC method, e.g. "tools/call"
//	mcp.name         string              tool, resource or prompt name; "" when none
//
// has() reports whether a field holds a non-zero value: has(token.client_id)
// is false when it is "", has(token.exp) when the expiry is unknown. For lists
// and maps compare size() with 0 instead.
//
// Indexing a map with a key it does not hold, e.g. request.headers["x-absent"],
// is an evaluation error and so a denial. Test for presence first with
// `"x-tenant" in request.headers && request.headers["x-tenant"] == "acme"`, or
// use an optional lookup: `request.headers[?"x-tenant"].orValue("") == "acme"`.
//
// # Functions
//
// The CEL standard library is available (operators, size, in, has, matches,
// startsWith, endsWith, contains, timestamp, duration, the timestamp accessors,
// and the macros all, exists, exists_one, map, filter), together with these
// extension libraries:
//
//   - strings: charAt, indexOf, lastIndexOf, lowerAscii, upperAscii, replace,
//     split, substring, trim, join, reverse, format, strings.quote.
//   - lists: distinct, flatten, lists.range, reverse, slice, sort, sortBy,
//     hasAll, hasAny, hasOnly, hasExactly.
//   - sets: sets.contains, sets.equivalent, sets.intersects.
//   - optional values: m[?key], x.?field, optional.of, orValue, hasValue...
//
// Timestamp accessors such as getHours() use UTC unless a time zone is given.
//
// There is deliberately no now() function and no other source of the current
// time, randomness or I/O: a policy is a pure function of its input, so the
// same request always gets the same decision. Checking that the token has
// not expired is the token verifier's job, not the policy's; a policy can
// still compare token.exp with a timestamp literal, e.g.
// `token.exp > timestamp("2026-01-01T00:00:00Z")`.
//
// # Examples
//
//	"mcp:admin" in token.scopes || (mcp.method == "tools/call" && mcp.name.startsWith("read_"))
//	token.iss == "https://issuer.example" && "api://mcp" in token.aud
//	sets.contains(token.scopes, ["files:read", "files:write"])
//	token.scopes.hasAll(["files:read", "files:write"])
//	request.headers[?"x-tenant"].orValue("") == token.sub.split("@")[1]
//
// # Limits
//
// An expression may be at most MaxExpressionBytes bytes long. Each evaluation
// may spend at most DefaultCostLimit CEL cost units (roughly one unit per
// variable access, comparison or function call, one unit per ten bytes a
// string function scans or list element a membership test visits, and the
// cost of its body for every element a comprehension visits);
// exceeding it fails the evaluation with an error wrapping ErrCostLimit.
// Comprehensions also check the caller's context periodically, so a cancelled
// or expired context stops a long evaluation.
package policy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// Token is what a policy may read about the verified access token.
type Token struct {
	Sub      string    `cel:"sub"`
	Iss      string    `cel:"iss"`
	ClientID string    `cel:"client_id"`
	Aud      []string  `cel:"aud"`
	Scopes   []string  `cel:"scopes"`
	Exp      time.Time `cel:"exp"`
	// Claims are the further claims the issuer is configured to keep
	// (keep_claims), as decoded JSON: strings, numbers (double), booleans,
	// lists and maps. An absent claim is an absent key.
	Claims map[string]any `cel:"claims"`
}

// Request is what a policy may read about the HTTP request.
type Request struct {
	Method string `cel:"method"`
	Host   string `cel:"host"`
	// Path is the request path without the query.
	Path string `cel:"path"`
	// Headers has lower-case names; repeated headers are already merged with ",".
	Headers map[string]string `cel:"headers"`
}

// MCP is the MCP operation: the JSON-RPC method and the tool/resource/prompt
// name ("" when none).
type MCP struct {
	Method string `cel:"method"`
	Name   string `cel:"name"`
}

// Input is one evaluation's data.
type Input struct {
	Token   Token
	Request Request
	MCP     MCP
}

// DefaultCostLimit bounds the runtime cost of one evaluation (CEL cost units).
//
// Honest policies are far below it. Measured with the cost tracker: a
// typical policy costs 3 to about 200 units (a membership test costs about
// one unit per list element, so "x" in token.scopes with 200 scopes is ~200);
// comprehensions over 200 scopes, or contains and matches over an 8 KiB
// header, cost 1,000 to 3,000. Scanning the largest header Envoy accepts by
// default (60 KiB) would cost about 6,000 units per string function, so even
// a policy that scans such a header three times stays under a fifth of the
// limit.
//
// A runaway policy, such as a nested comprehension over a header split into
// a few hundred items (whose cost an attacker controls through the header),
// is stopped at 100,000 units after about 4 to 5 ms of CPU and 1.3 MB of
// garbage on a 2-vCPU AMD EPYC VM (BenchmarkCostLimit), against about 1 µs
// for a typical policy. That bounds the damage a careless policy can turn
// into a per-request denial of service on the authorization hot path while
// leaving ample headroom for honest policies. Lowering the limit to 20,000
// would cap the worst case near 1 ms at the price of less headroom.
const DefaultCostLimit = 100000

// MaxExpressionBytes is the longest expression Compile accepts, in bytes.
const MaxExpressionBytes = 4096

// interruptCheckFrequency is how many comprehension iterations run between
// two looks at the context. A look is a non-blocking channel receive, so
// checking every 100 iterations costs next to nothing while a cancelled
// evaluation stops within microseconds.
const interruptCheckFrequency = 100

// ErrCostLimit is wrapped by the error Eval returns when an evaluation exceeds
// the cost limit.
var ErrCostLimit = errors.New("policy: cost limit exceeded")

// CompileError is one problem found in an expression, at a 1-based line and
// column. Columns count Unicode characters, not bytes. Line and Column are 0
// when CEL could not attribute the problem to a position.
type CompileError struct {
	Line, Column int
	Msg          string
}

// Error implements error: "line 1, column 7: message".
func (e CompileError) Error() string {
	if e.Line <= 0 {
		return e.Msg
	}
	return "line " + strconv.Itoa(e.Line) + ", column " + strconv.Itoa(e.Column) + ": " + e.Msg
}

// CompileErrors is every problem in one expression, ordered by position.
type CompileErrors []CompileError

// Error joins the problems with "; ", for example
// "line 1, column 7: undeclared reference to 'tokn'; line 2, column 1: ...".
func (e CompileErrors) Error() string {
	var b strings.Builder
	for i, ce := range e {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(ce.Error())
	}
	return b.String()
}

// Compiler holds the CEL environment. Safe for concurrent use; build one and
// reuse it.
type Compiler struct {
	env       *cel.Env
	costLimit uint64
}

// NewCompiler builds the CEL environment described in the package
// documentation.
func NewCompiler() (*Compiler, error) {
	return newCompiler(DefaultCostLimit)
}

// newCompiler lets tests pick another cost limit.
func newCompiler(costLimit uint64) (*Compiler, error) {
	env, err := cel.NewEnv(
		// The field names come from the `cel` struct tags, so policies say
		// token.client_id rather than token.ClientID. The CEL type names are
		// policy.Token, policy.Request and policy.MCP.
		ext.NativeTypes(
			reflect.TypeFor[Token](),
			reflect.TypeFor[Request](),
			reflect.TypeFor[MCP](),
			ext.ParseStructTags(true),
		),
		cel.Variable("token", cel.ObjectType("policy.Token")),
		cel.Variable("request", cel.ObjectType("policy.Request")),
		cel.Variable("mcp", cel.ObjectType("policy.MCP")),
		ext.Strings(),
		ext.Lists(),
		ext.Sets(),
		cel.OptionalTypes(),
		cel.DefaultUTCTimeZone(true),
		// Reject bad timestamp, duration and regex literals, and mixed-type
		// list and map literals, when the configuration is loaded rather than
		// on the first request that reaches them.
		cel.ExtendedValidations(),
	)
	if err != nil {
		return nil, fmt.Errorf("policy: building CEL environment: %w", err)
	}
	return &Compiler{env: env, costLimit: costLimit}, nil
}

// Compile parses and type-checks expr, which must have type bool. Any
// problem is reported as a CompileErrors. Empty expressions and expressions
// longer than MaxExpressionBytes are refused.
func (c *Compiler) Compile(expr string) (*Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, CompileErrors{{Line: 1, Column: 1, Msg: "expression is empty"}}
	}
	if len(expr) > MaxExpressionBytes {
		return nil, CompileErrors{{Line: 1, Column: 1, Msg: fmt.Sprintf(
			"expression is %d bytes long; the limit is %d", len(expr), MaxExpressionBytes)}}
	}
	checked, iss := c.env.Compile(expr)
	if iss.Err() != nil {
		return nil, compileErrors(iss)
	}
	if t := checked.OutputType(); !t.IsExactType(types.BoolType) {
		line, col := startOf(expr)
		return nil, CompileErrors{{Line: line, Column: col, Msg: "expression must be a bool, got " + cel.FormatCELType(t)}}
	}
	prg, err := c.env.Program(checked,
		cel.CostLimit(c.costLimit),
		cel.InterruptCheckFrequency(interruptCheckFrequency),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, fmt.Errorf("policy: planning expression: %w", err)
	}
	return &Program{
		src:           expr,
		prg:           prg,
		costLimit:     c.costLimit,
		interruptible: hasComprehension(checked.NativeRep()),
		readsMCP:      refersTo(checked.NativeRep(), "mcp"),
		readsRequest:  refersTo(checked.NativeRep(), "request") || readsClaims(checked.NativeRep()),
	}, nil
}

// refersTo reports whether the expression names the variable anywhere.
func refersTo(a *celast.AST, name string) bool {
	found := false
	celast.PreOrderVisit(a.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.IdentKind && e.AsIdent() == name {
			found = true
		}
	}))
	return found
}

// readsClaims reports whether the expression may read token.claims: true
// unless every use of the token variable is a plain selection of one of
// its other fields (token.sub, token.scopes...). Anything else (token
// alone, token.?claims, token.claims) counts, conservatively.
func readsClaims(a *celast.AST) bool {
	tokens, plain := 0, 0
	celast.PreOrderVisit(a.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.IdentKind:
			if e.AsIdent() == "token" {
				tokens++
			}
		case celast.SelectKind:
			s := e.AsSelect()
			if op := s.Operand(); op.Kind() == celast.IdentKind && op.AsIdent() == "token" && s.FieldName() != "claims" {
				plain++
			}
		}
	}))
	return tokens != plain
}

// hasComprehension reports whether the expression contains a comprehension
// (all, exists, exists_one, map, filter...), the only place where cel-go
// checks for a cancelled context.
func hasComprehension(a *celast.AST) bool {
	found := false
	celast.PreOrderVisit(a.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.ComprehensionKind {
			found = true
		}
	}))
	return found
}

// startOf returns the 1-based line and column (in characters) of the first
// character of expr that is neither CEL whitespace nor part of a // comment.
// CEL itself positions an expression at its operator (the "." of token.sub),
// which would be a confusing place to blame for the whole expression.
func startOf(expr string) (line, col int) {
	line, col = 1, 1
	inComment := false
	for i, r := range expr {
		switch {
		case r == '\n':
			line, col, inComment = line+1, 1, false
			continue
		case inComment:
		case r == '/' && strings.HasPrefix(expr[i:], "//"):
			inComment = true
		case r == ' ' || r == '\t' || r == '\r' || r == '\f':
		default:
			return line, col
		}
		col++
	}
	return 1, 1
}

// compileErrors converts CEL issues into CompileErrors ordered by position,
// without CEL's "ERROR: <input>:" prefix and source excerpt.
func compileErrors(iss *cel.Issues) CompileErrors {
	errs := iss.Errors()
	out := make(CompileErrors, 0, len(errs))
	for _, e := range errs {
		ce := CompileError{Msg: e.Message}
		if l := e.Location; l != nil && l.Line() > 0 {
			ce.Line, ce.Column = l.Line(), l.Column()+1
		}
		// There is no container, so the hint is noise.
		ce.Msg = strings.Replace(ce.Msg, " (in container '')", "", 1)
		out = append(out, ce)
	}
	slices.SortStableFunc(out, func(a, b CompileError) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return out
}

// Program is a compiled policy; safe for concurrent use.
type Program struct {
	src       string
	prg       cel.Program
	costLimit uint64
	// interruptible is set when the expression has a comprehension, so
	// evaluation can take long enough for a context check to matter.
	interruptible bool
	// readsMCP is set when the expression refers to the mcp variable.
	readsMCP bool
	// readsRequest is set when the expression refers to the request
	// variable or may read token.claims (see readsClaims).
	readsRequest bool
}

// Source returns the expression the program was compiled from.
func (p *Program) Source() string { return p.src }

// ReadsMCP reports whether the expression refers to the MCP operation
// (the mcp variable): deciding it then needs the operation to be known.
func (p *Program) ReadsMCP() bool { return p.readsMCP }

// ReadsRequest reports whether the expression may read what only the
// request being decided holds: the request variable, or the token's kept
// claims (token.claims, which the Check's dynamic metadata does not carry).
// A policy that does not can be evaluated for an operation other than the
// one of the request at hand, from the token's standard fields alone
// (listing filters use that).
func (p *Program) ReadsRequest() bool { return p.readsRequest }

// Eval runs the program. It returns the boolean result, or an error for any
// evaluation failure: no such key, overflow, cost limit (wrapping
// ErrCostLimit), a cancelled context or expired deadline (wrapping the
// context's error)... The caller must deny on error.
func (p *Program) Eval(ctx context.Context, in *Input) (bool, error) {
	if in == nil {
		return false, errors.New("policy: nil input")
	}
	if ctx.Err() != nil {
		// Decide nothing on a dead context, even for expressions too simple
		// to reach an interrupt check.
		return false, fmt.Errorf("policy: evaluation not started: %w", context.Cause(ctx))
	}
	var (
		out ref.Val
		err error
	)
	act := activation{in: in}
	if p.interruptible && ctx.Done() != nil {
		out, _, err = p.prg.ContextEval(ctx, act)
	} else {
		// cel-go only looks at the context between comprehension
		// iterations, so without a comprehension (or with a context that
		// can never be cancelled) ContextEval would add nothing but its
		// per-call cancellable child context and interrupt state, which
		// nearly doubles the time a typical policy takes. The cost limit
		// still bounds the evaluation.
		out, _, err = p.prg.Eval(act)
	}
	if err != nil {
		return false, p.evalError(err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		// Unreachable for a type-checked bool expression; fail closed anyway.
		return false, fmt.Errorf("policy: expression returned %T, not a bool", out)
	}
	return bool(b), nil
}

// evalError classifies an evaluation error.
func (p *Program) evalError(err error) error {
	var cancelled interpreter.EvalCancelledError
	if errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded {
		return fmt.Errorf("%w (limit %d units)", ErrCostLimit, p.costLimit)
	}
	if errors.Is(err, interpreter.InterruptError{}) {
		return fmt.Errorf("policy: evaluation interrupted: %w", err)
	}
	return fmt.Errorf("policy: evaluation failed: %w", err)
}

// activation resolves the three top-level variables straight from an Input.
// Being a single pointer, it fits in an interface without an allocation, and
// the field values are read lazily by the native-type accessors only when
// the expression refers to them.
type activation struct{ in *Input }

// ResolveName implements interpreter.Activation.
func (a activation) ResolveName(name string) (any, bool) {
	switch name {
	case "token":
		return &a.in.Token, true
	case "request":
		return &a.in.Request, true
	case "mcp":
		return &a.in.MCP, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (activation) Parent() interpreter.Activation { return nil }

var _ interpreter.Activation = activation{}
