package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestCompiler(t testing.TB) *Compiler {
	t.Helper()
	c, err := NewCompiler()
	if err != nil {
		t.Fatalf("NewCompiler: %v", err)
	}
	return c
}

func mustCompile(t testing.TB, c *Compiler, expr string) *Program {
	t.Helper()
	p, err := c.Compile(expr)
	if err != nil {
		t.Fatalf("Compile(%q): %v", expr, err)
	}
	return p
}

func sampleInput() *Input {
	return &Input{
		Token: Token{
			Sub:      "alice@example.com",
			Iss:      "https://issuer.example",
			ClientID: "mcp-client",
			Aud:      []string{"api://mcp", "other"},
			Scopes:   []string{"files:read", "mcp:user"},
			Exp:      time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC),
		},
		Request: Request{
			Method: "POST",
			Host:   "mcp.example.com",
			Path:   "/mcp",
			Headers: map[string]string{
				"x-tenant":     "example.com",
				"content-type": "Application/JSON",
				"accept":       "application/json,text/event-stream",
			},
		},
		MCP: MCP{Method: "tools/call", Name: "read_file"},
	}
}

func TestEval(t *testing.T) {
	c := newTestCompiler(t)
	full := sampleInput()
	empty := &Input{}
	tests := []struct {
		name string
		in   *Input
		expr string
		want bool
	}{
		// token
		{"sub equal", full, `token.sub == "alice@example.com"`, true},
		{"sub differs", full, `token.sub == "bob@example.com"`, false},
		{"iss prefix", full, `token.iss.startsWith("https://issuer.")`, true},
		{"iss other", full, `token.iss == "https://evil.example"`, false},
		{"client_id", full, `token.client_id == "mcp-client"`, true},
		{"client_id other", full, `token.client_id != "mcp-client"`, false},
		{"aud member", full, `"api://mcp" in token.aud`, true},
		{"aud not member", full, `"api://other" in token.aud`, false},
		{"scope member", full, `"files:read" in token.scopes`, true},
		{"scope not member", full, `"mcp:admin" in token.scopes`, false},
		{"scope exists", full, `token.scopes.exists(s, s.startsWith("files:"))`, true},
		{"scope all", full, `token.scopes.all(s, s.startsWith("files:"))`, false},
		{"sets.contains", full, `sets.contains(token.scopes, ["files:read", "mcp:user"])`, true},
		{"sets.contains missing", full, `sets.contains(token.scopes, ["files:read", "files:write"])`, false},
		{"sets.intersects", full, `sets.intersects(token.aud, ["x", "other"])`, true},
		{"lists hasAny", full, `token.scopes.hasAny(["files:write", "mcp:admin"])`, false},
		{"scopes size", full, `size(token.scopes) == 2`, true},
		{"has sub", full, `has(token.sub)`, true},
		{"has client_id unset", empty, `has(token.client_id)`, false},

		// timestamps
		{"exp after", full, `token.exp > timestamp("2026-01-01T00:00:00Z")`, true},
		{"exp before", full, `token.exp < timestamp("2026-01-01T00:00:00Z")`, false},
		{"exp minus duration", full, `token.exp - duration("4320h") > timestamp("2025-12-01T00:00:00Z")`, true},
		{"exp accessor is UTC", full, `token.exp.getHours() == 12 && token.exp.getFullYear() == 2026`, true},
		{"exp accessor with zone", full, `token.exp.getHours("Europe/Paris") == 14`, true},
		{"exp unset is the epoch", empty, `token.exp == timestamp(0) && !has(token.exp)`, true},
		{"exp set", full, `has(token.exp)`, true},

		// request
		{"method", full, `request.method == "POST"`, true},
		{"method other", full, `request.method in ["GET", "HEAD"]`, false},
		{"host suffix", full, `request.host.endsWith(".example.com")`, true},
		{"path", full, `request.path == "/mcp"`, true},
		{"path other", full, `request.path.startsWith("/admin")`, false},
		{"header equal", full, `request.headers["x-tenant"] == "example.com"`, true},
		{"header select", full, `request.headers.accept.contains("text/event-stream")`, true},
		{"header present", full, `"x-tenant" in request.headers`, true},
		{"header absent", full, `"x-absent" in request.headers`, false},
		{"header guarded", full, `"x-absent" in request.headers && request.headers["x-absent"] == "a"`, false},
		{"header optional", full, `request.headers[?"x-absent"].orValue("none") == "none"`, true},
		{"header lowerAscii", full, `request.headers["content-type"].lowerAscii() == "application/json"`, true},
		{"header split", full, `request.headers["accept"].split(",").size() == 2`, true},
		{"header keys", full, `request.headers.exists(k, k.startsWith("x-"))`, true},
		{"header vs token", full, `token.sub.split("@")[1] == request.headers["x-tenant"]`, true},
		{"headers nil map", empty, `size(request.headers) == 0 && !("x" in request.headers)`, true},

		// mcp
		{"mcp method and name", full, `mcp.method == "tools/call" && mcp.name.startsWith("read_")`, true},
		{"mcp name regex", full, `mcp.name.matches("^(write|delete)_")`, false},
		{"mcp name empty", empty, `mcp.name == "" && mcp.method == ""`, true},
		{"typical policy allows", full, benchPolicy, true},
		{"typical policy denies", &Input{MCP: MCP{Method: "tools/call", Name: "write_file"}}, benchPolicy, false},
		{"typical policy admin", &Input{Token: Token{Scopes: []string{"mcp:admin"}}, MCP: MCP{Method: "tools/call", Name: "write_file"}}, benchPolicy, true},

		// extension string functions
		{"strings replace", full, `token.sub.replace("@", " at ") == "alice at example.com"`, true},
		{"strings format", full, `"%s/%s".format([mcp.method, mcp.name]) == "tools/call/read_file"`, true},
		{"strings join", full, `token.aud.join(" ") == "api://mcp other"`, true},
		{"strings indexOf", full, `token.sub.indexOf("@") == 5`, true},
		{"strings upperAscii", full, `request.method.lowerAscii().upperAscii() == "GET"`, false},
		{"multi-line with comment", full, "// admins may do anything\n\"mcp:admin\" in token.scopes ||\n  mcp.name.startsWith(\"read_\")", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, c, tt.expr)
			got, err := p.Eval(context.Background(), tt.in)
			if err != nil {
				t.Fatalf("Eval(%q): %v", tt.expr, err)
			}
			if got != tt.want {
				t.Errorf("Eval(%q) = %v, want %v", tt.expr, got, tt.want)
			}
			// A cancellable context takes the ContextEval path; it must agree.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got, err = p.Eval(ctx, tt.in)
			if err != nil || got != tt.want {
				t.Errorf("Eval(%q) with cancellable context = %v, %v; want %v", tt.expr, got, err, tt.want)
			}
		})
	}
}

// TestDocExamples compiles the examples and functions the package
// documentation promises.
func TestDocExamples(t *testing.T) {
	c := newTestCompiler(t)
	for _, expr := range []string{
		`"mcp:admin" in token.scopes || (mcp.method == "tools/call" && mcp.name.startsWith("read_"))`,
		`token.iss == "https://issuer.example" && "api://mcp" in token.aud`,
		`sets.contains(token.scopes, ["files:read", "files:write"])`,
		`token.scopes.hasAll(["files:read", "files:write"])`,
		`request.headers[?"x-tenant"].orValue("") == token.sub.split("@")[1]`,
		`"x-tenant" in request.headers && request.headers["x-tenant"] == "acme"`,
		`token.exp > timestamp("2026-01-01T00:00:00Z")`,
		`has(token.client_id) && has(token.exp) && has(request.headers.accept)`,
		`token.?sub.orValue("") != "" && optional.of(1).hasValue()`,
		`mcp.name.charAt(0) == "r" && mcp.name.indexOf("_") > 0 && mcp.name.lastIndexOf("_") > 0`,
		`mcp.name.substring(0, 4).upperAscii() == "READ" && " a ".trim() == "a" && "ab".reverse() == "ba"`,
		`strings.quote(mcp.name) != "" && token.aud.join(",") != ""`,
		`token.scopes.distinct().size() == [[1], [2]].flatten().size() && lists.range(2).reverse() == [1, 0]`,
		`token.scopes.slice(0, 1).size() == 1 && token.scopes.sort() == token.scopes.sortBy(s, s)`,
		`token.scopes.hasAny(["a"]) || token.scopes.hasOnly(["a"]) || token.scopes.hasExactly(["a"])`,
		`sets.equivalent(token.aud, token.aud) && sets.intersects(token.aud, ["x"])`,
		`token.scopes.exists_one(s, s == "x") || token.scopes.filter(s, s != "").map(s, s.size()).all(n, n > 0)`,
		`token.exp.getDayOfWeek() >= 0 && token.exp + duration("1h") > token.exp`,
	} {
		if _, err := c.Compile(expr); err != nil {
			t.Errorf("Compile(%q): %v", expr, err)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	c := newTestCompiler(t)
	tests := []struct {
		name    string
		expr    string
		want    CompileErrors // Msg is matched as a substring
		wantStr string        // exact Error(), when non-empty
	}{
		{
			name: "undeclared variable",
			expr: `tokn.sub == "a"`,
			want: CompileErrors{{1, 1, "undeclared reference to 'tokn'"}},
		},
		{
			name: "undeclared variable mid-line",
			expr: `token.sub == "a" || tokn.sub == "b"`,
			want: CompileErrors{{1, 21, "undeclared reference to 'tokn'"}},
		},
		{
			// CEL positions a field selection at its ".".
			name:    "misspelt field",
			expr:    `token.sbu == "a"`,
			want:    CompileErrors{{1, 6, "undefined field 'sbu'"}},
			wantStr: "line 1, column 6: undefined field 'sbu'",
		},
		{
			name: "misspelt field on line 3",
			expr: "mcp.method == \"tools/call\" &&\n  mcp.name != \"\" &&\n  request.header[\"x\"] == \"y\"",
			want: CompileErrors{{3, 10, "undefined field 'header'"}},
		},
		{
			name: "syntax error on line 2",
			expr: "token.sub == \"a\" &&\n  mcp.name == == \"b\"",
			want: CompileErrors{{2, 15, "Syntax error"}},
		},
		{
			name: "type error",
			expr: `token.aud == "api://mcp"`,
			want: CompileErrors{{1, 11, "found no matching overload for '_==_'"}},
		},
		{
			name: "columns count characters",
			expr: `"héllo" == tokn`,
			want: CompileErrors{{1, 12, "undeclared reference to 'tokn'"}},
		},
		{
			name: "several problems in order",
			expr: "tokn.sub == \"a\" &&\n  mcp.nmae == \"b\"",
			want: CompileErrors{
				{1, 1, "undeclared reference to 'tokn'"},
				{2, 6, "undefined field 'nmae'"},
			},
		},
		{
			name:    "not a bool",
			expr:    `token.sub`,
			want:    CompileErrors{{1, 1, "expression must be a bool, got string"}},
			wantStr: "line 1, column 1: expression must be a bool, got string",
		},
		{
			name: "not a bool after comment",
			expr: "// the subject\n  token.scopes",
			want: CompileErrors{{2, 3, "expression must be a bool, got list(string)"}},
		},
		{
			name: "dyn is not a bool",
			expr: `dyn(token.sub)`,
			want: CompileErrors{{1, 1, "expression must be a bool, got dyn"}},
		},
		{
			name:    "empty",
			expr:    ``,
			want:    CompileErrors{{1, 1, "expression is empty"}},
			wantStr: "line 1, column 1: expression is empty",
		},
		{
			name: "blank",
			expr: " \n\t ",
			want: CompileErrors{{1, 1, "expression is empty"}},
		},
		{
			name:    "too long",
			expr:    `token.sub == "` + strings.Repeat("a", MaxExpressionBytes) + `"`,
			want:    CompileErrors{{1, 1, "expression is 4111 bytes long; the limit is 4096"}},
			wantStr: "line 1, column 1: expression is 4111 bytes long; the limit is 4096",
		},
		{
			name: "bad timestamp literal",
			expr: `token.exp > timestamp("2026-13-01T00:00:00Z")`,
			want: CompileErrors{{1, 23, "invalid timestamp argument"}},
		},
		{
			name: "bad regex literal",
			expr: `mcp.name.matches("(")`,
			want: CompileErrors{{1, 18, "invalid matches argument"}},
		},
		{
			name: "no now function",
			expr: `token.exp > now`,
			want: CompileErrors{{1, 13, "undeclared reference to 'now'"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := c.Compile(tt.expr)
			if err == nil {
				t.Fatalf("Compile(%q) = %v, want an error", tt.expr, p.Source())
			}
			var got CompileErrors
			if !errors.As(err, &got) {
				t.Fatalf("Compile(%q) error %T %v, want CompileErrors", tt.expr, err, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Compile(%q) = %d errors %v, want %d %v", tt.expr, len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if got[i].Line != tt.want[i].Line || got[i].Column != tt.want[i].Column || !strings.Contains(got[i].Msg, tt.want[i].Msg) {
					t.Errorf("error %d = %+v, want line %d, column %d, message containing %q",
						i, got[i], tt.want[i].Line, tt.want[i].Column, tt.want[i].Msg)
				}
			}
			s := err.Error()
			if tt.wantStr != "" && s != tt.wantStr {
				t.Errorf("Error() = %q, want %q", s, tt.wantStr)
			}
			for _, bad := range []string{"ERROR:", "<input>", "\n", " | ", "in container"} {
				if strings.Contains(s, bad) {
					t.Errorf("Error() = %q contains %q", s, bad)
				}
			}
		})
	}
}

func TestCompileErrorsString(t *testing.T) {
	errs := CompileErrors{
		{Line: 1, Column: 7, Msg: "undeclared reference to 'tokn'"},
		{Line: 2, Column: 1, Msg: "undefined field 'x'"},
		{Msg: "somewhere"},
	}
	const want = "line 1, column 7: undeclared reference to 'tokn'; line 2, column 1: undefined field 'x'; somewhere"
	if got := errs.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestSource(t *testing.T) {
	c := newTestCompiler(t)
	const expr = "  mcp.name == \"x\"\n"
	if got := mustCompile(t, c, expr).Source(); got != expr {
		t.Errorf("Source() = %q, want %q", got, expr)
	}
}

func TestEvalErrors(t *testing.T) {
	c := newTestCompiler(t)
	in := sampleInput()
	in.Request.Headers["x-list"] = strings.TrimSuffix(strings.Repeat("a,", 400), ",")
	tests := []struct {
		name     string
		expr     string
		wantIs   error  // errors.Is target, if any
		wantText string // substring of the error
	}{
		{"missing header", `request.headers["x-absent"] == "a"`, nil, "no such key: x-absent"},
		{"missing header via select", `request.headers.authorization != ""`, nil, "no such key: authorization"},
		{"missing header negated", `!(request.headers["x-absent"] == "a")`, nil, "no such key"},
		{"index out of range", `token.aud[5] == "x"`, nil, "index out of bounds"},
		{"overflow", `size(token.scopes) + 9223372036854775807 > 0`, nil, "overflow"},
		{"division by zero", `1 / (size(token.scopes) - 2) == 0`, nil, "division by zero"},
		{"bad timestamp at runtime", `timestamp(request.path) > token.exp`, nil, "timestamp"},
		{"bad regex at runtime", `mcp.name.matches(request.headers["x-tenant"] + "(")`, nil, "error parsing regexp"},
		{"cost: nested comprehension over a header split",
			`request.headers["x-list"].split(",").all(a, request.headers["x-list"].split(",").all(b, a == b))`,
			ErrCostLimit, "cost limit exceeded"},
		{"cost: nested ranges",
			`lists.range(1000).all(x, lists.range(1000).all(y, x + y >= 0))`,
			ErrCostLimit, "cost limit exceeded (limit 100000 units)"},
		{"cost: map of maps",
			`lists.range(500).map(x, lists.range(500).map(y, x * y)).size() > 0`,
			ErrCostLimit, "cost limit exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, c, tt.expr)
			for _, ctx := range []context.Context{context.Background(), t.Context()} {
				got, err := p.Eval(ctx, in)
				if err == nil {
					t.Fatalf("Eval(%q) = %v, nil; want an error", tt.expr, got)
				}
				if got {
					t.Errorf("Eval(%q) returned true alongside error %v", tt.expr, err)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("Eval(%q) error %v does not wrap %v", tt.expr, err, tt.wantIs)
				}
				if tt.wantIs == nil && errors.Is(err, ErrCostLimit) {
					t.Errorf("Eval(%q) error %v wraps ErrCostLimit", tt.expr, err)
				}
				if !strings.Contains(err.Error(), tt.wantText) {
					t.Errorf("Eval(%q) error %q, want it to contain %q", tt.expr, err, tt.wantText)
				}
			}
		})
	}
}

// TestCostLimitHeadroom checks that reasonable policies over generous input
// stay well inside the cost limit.
func TestCostLimitHeadroom(t *testing.T) {
	c := newTestCompiler(t)
	in := sampleInput()
	for i := range 200 {
		in.Token.Scopes = append(in.Token.Scopes, fmt.Sprintf("scope:%d", i))
	}
	in.Request.Headers["x-big"] = strings.Repeat("abcdefgh", 1024) // 8 KiB
	for _, expr := range []string{
		benchPolicy,
		`token.scopes.exists(s, s.startsWith("files:") && s.endsWith(":read"))`,
		`token.scopes.filter(s, s.startsWith("scope:1")).size() > 10`,
		`request.headers["x-big"].contains("zzz") || request.headers["x-big"].matches("^(abcdefgh)+$")`,
		`request.headers["x-big"].split("e").size() > 100`,
		`token.scopes.all(s, s in ["files:read", "mcp:user"] || s.startsWith("scope:"))`,
	} {
		p := mustCompile(t, c, expr)
		if _, err := p.Eval(context.Background(), in); err != nil {
			t.Errorf("Eval(%q): %v", expr, err)
		}
	}
}

func TestEvalCancelledContext(t *testing.T) {
	c := newTestCompiler(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Even an expression with no comprehension, which never reaches an
	// interrupt check, must not decide on a dead context.
	for _, expr := range []string{
		`token.sub == "alice@example.com"`,
		`lists.range(10).all(x, x >= 0)`,
	} {
		p := mustCompile(t, c, expr)
		got, err := p.Eval(ctx, sampleInput())
		if err == nil || got {
			t.Fatalf("Eval(%q) with cancelled context = %v, %v; want false and an error", expr, got, err)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Eval(%q) error %v does not wrap context.Canceled", expr, err)
		}
	}
}

func TestEvalInterruptedMidway(t *testing.T) {
	// Without a practical cost limit this runs 10^10 iterations; only the
	// context can stop it.
	c, err := newCompiler(1 << 62)
	if err != nil {
		t.Fatal(err)
	}
	p := mustCompile(t, c, `lists.range(100000).all(x, lists.range(100000).all(y, x + y >= 0))`)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	got, err := p.Eval(ctx, sampleInput())
	elapsed := time.Since(start)
	if err == nil || got {
		t.Fatalf("Eval = %v, %v; want false and an error", got, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if errors.Is(err, ErrCostLimit) {
		t.Errorf("error %v wraps ErrCostLimit", err)
	}
	if elapsed > 5*time.Second {
		t.Errorf("evaluation stopped after %v, want soon after the 50ms deadline", elapsed)
	}
}

func TestInterruptibleOnlyWithComprehension(t *testing.T) {
	c := newTestCompiler(t)
	for expr, want := range map[string]bool{
		benchPolicy:                          false,
		`sets.contains(token.scopes, ["a"])`: false,
		`token.scopes.exists(s, s == "a")`:   true,
		`mcp.name == "x" || request.headers.all(k, k != "x-forbidden")`: true,
		`token.aud.map(a, a.lowerAscii()).size() > 0`:                   true,
	} {
		if got := mustCompile(t, c, expr).interruptible; got != want {
			t.Errorf("%q: interruptible = %v, want %v", expr, got, want)
		}
	}
}

func TestEvalNilInput(t *testing.T) {
	p := mustCompile(t, newTestCompiler(t), `mcp.name == ""`)
	if got, err := p.Eval(context.Background(), nil); err == nil || got {
		t.Errorf("Eval(nil) = %v, %v; want false and an error", got, err)
	}
}

func TestConcurrentEval(t *testing.T) {
	c := newTestCompiler(t)
	p := mustCompile(t, c, `"mcp:admin" in token.scopes || (mcp.method == "tools/call" && mcp.name.startsWith("read_") && request.headers["x-tenant"] == token.sub.split("@")[1])`)
	const workers, iterations = 16, 300
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if w%2 == 0 {
				ctx = context.Background()
			}
			for i := range iterations {
				in := sampleInput()
				want := true
				switch (w + i) % 3 {
				case 1:
					in.MCP.Name = fmt.Sprintf("write_%d", i)
					want = false
				case 2:
					in.MCP.Name = "write"
					in.Token.Scopes = append(in.Token.Scopes, "mcp:admin")
				}
				got, err := p.Eval(ctx, in)
				if err != nil || got != want {
					errs <- fmt.Errorf("worker %d iteration %d: got %v, %v; want %v", w, i, got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestConcurrentCompile(t *testing.T) {
	c := newTestCompiler(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			p, err := c.Compile(fmt.Sprintf(`mcp.name == "tool_%d"`, i))
			if err != nil {
				t.Error(err)
				return
			}
			in := &Input{MCP: MCP{Name: fmt.Sprintf("tool_%d", i)}}
			if ok, err := p.Eval(context.Background(), in); !ok || err != nil {
				t.Errorf("Eval = %v, %v", ok, err)
			}
		})
	}
	wg.Wait()
}

const benchPolicy = `"mcp:admin" in token.scopes || (mcp.method == "tools/call" && mcp.name.startsWith("read_"))`

func BenchmarkEval(b *testing.B) {
	c := newTestCompiler(b)
	in := sampleInput()
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	const comprehension = `token.scopes.exists(s, s == "mcp:admin") || (mcp.method == "tools/call" && mcp.name.startsWith("read_"))`
	for _, bc := range []struct {
		name string
		expr string
		ctx  context.Context
	}{
		{"background", benchPolicy, context.Background()},
		{"cancellable", benchPolicy, cancellable},
		// A comprehension makes Eval use ContextEval when the context can be
		// cancelled.
		{"comprehension/background", comprehension, context.Background()},
		{"comprehension/cancellable", comprehension, cancellable},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := mustCompile(b, c, bc.expr)
			b.ReportAllocs()
			for b.Loop() {
				ok, err := p.Eval(bc.ctx, in)
				if err != nil || !ok {
					b.Fatalf("Eval = %v, %v", ok, err)
				}
			}
		})
	}
}

func BenchmarkEvalParallel(b *testing.B) {
	p := mustCompile(b, newTestCompiler(b), benchPolicy)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		in := sampleInput()
		for pb.Next() {
			if ok, err := p.Eval(context.Background(), in); err != nil || !ok {
				b.Errorf("Eval = %v, %v", ok, err)
				return
			}
		}
	})
}

// BenchmarkCostLimit measures how long an evaluation runs before the cost
// limit stops it: the worst case a hostile or careless policy can impose on
// each request.
func BenchmarkCostLimit(b *testing.B) {
	c := newTestCompiler(b)
	in := sampleInput()
	in.Request.Headers["x-list"] = strings.TrimSuffix(strings.Repeat("a,", 400), ",")
	for _, bc := range []struct{ name, expr string }{
		{"ranges", `lists.range(1000).all(x, lists.range(1000).all(y, x + y >= 0))`},
		{"header-split", `request.headers["x-list"].split(",").all(a, request.headers["x-list"].split(",").all(b, a == b))`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := mustCompile(b, c, bc.expr)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Eval(context.Background(), in); !errors.Is(err, ErrCostLimit) {
					b.Fatalf("Eval error = %v, want ErrCostLimit", err)
				}
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	c := newTestCompiler(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Compile(benchPolicy); err != nil {
			b.Fatal(err)
		}
	}
}

func TestReadsRequest(t *testing.T) {
	c, err := NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	for expr, want := range map[string]bool{
		`"a" in token.scopes`:                            false,
		`has(token.client_id) && mcp.name == "x"`:        false,
		`token.sub == "u" && token.exp > timestamp(0)`:   false,
		`request.method == "POST"`:                       true,
		`request.headers[?"x-t"].orValue("") == "a"`:     true,
		`token.claims["tenant"] == "a"`:                  true,
		`has(token.claims.tenant)`:                       true,
		`[token].exists(t, t.claims["x"] == "y")`:        true,
		`token.?claims.orValue({}).size() == 0`:          true,
		`mcp.method == "tools/call" && token.iss == "i"`: false,
	} {
		p, err := c.Compile(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if got := p.ReadsRequest(); got != want {
			t.Errorf("%s: ReadsRequest() = %v, want %v", expr, got, want)
		}
	}
}
