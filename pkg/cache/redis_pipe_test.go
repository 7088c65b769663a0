package cache

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/internal/redistest"
)

// pipeFor returns a getPipe to srv's database db, as a store built on a client for that URL
// would make it.
func pipeFor(t *testing.T, addr string, db string) (*getPipe, redis.UniversalClient) {
	t.Helper()
	c, err := NewRedisClient(RedisClientOptions{URL: "redis://" + addr + "/" + db, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	dial := pipeDialer(c)
	if dial == nil {
		t.Fatal("no pipe for a standalone client")
	}
	return &getPipe{dial: dial}, c
}

// pipeGets sends keys as one batch and returns each reply.
func pipeGets(p *getPipe, deadline time.Duration, keys ...string) []readResult {
	batch := make([]*readReq, len(keys))
	for i, k := range keys {
		batch[i] = &readReq{key: k, done: make(chan readResult, 1)}
	}
	p.gets(context.Background(), time.Now().Add(deadline), batch)
	out := make([]readResult, len(keys))
	for i, req := range batch {
		out[i] = <-req.done
	}
	return out
}

// TestGetPipeReadsABatch: one batch of GETs on the pipe answers each in order, from the
// client's database: a value, a missing key (redis.Nil), a key of another type (its error
// reply, the rest of the batch unharmed), a key that exists only in another database.
func TestGetPipeReadsABatch(t *testing.T) {
	srv := redistest.Start(t)
	p, c := pipeFor(t, srv.Addr(), "3")
	ctx := t.Context()
	if err := c.Set(ctx, "a", "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.LPush(ctx, "list", "x").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := redistest.Do(srv.Addr(), "SET", "only-in-0", "v"); err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // the second on the same connection
		got := pipeGets(p, time.Second, "a", "list", "missing", "only-in-0", "a")
		if string(got[0].raw) != "1" || got[0].err != nil || string(got[4].raw) != "1" || got[4].err != nil {
			t.Fatalf("round %d: a = %q %v, %q %v", round, got[0].raw, got[0].err, got[4].raw, got[4].err)
		}
		var re replyError
		if !errors.As(got[1].err, &re) || !strings.Contains(got[1].err.Error(), "WRONGTYPE") {
			t.Fatalf("round %d: a list: %q %v, want its WRONGTYPE error", round, got[1].raw, got[1].err)
		}
		for _, i := range []int{2, 3} {
			if !errors.Is(got[i].err, redis.Nil) || got[i].raw != nil {
				t.Fatalf("round %d: key %d: %q %v, want redis.Nil", round, i, got[i].raw, got[i].err)
			}
		}
	}
}

// TestGetPipeRecovers: a frozen Redis fails the batch at its deadline, an error for every
// GET; a restarted one fails at most the batch that finds the connection gone; either way the
// next batch dials again and reads.
func TestGetPipeRecovers(t *testing.T) {
	srv := redistest.Start(t)
	p, c := pipeFor(t, srv.Addr(), "0")
	set := func() {
		t.Helper()
		if err := c.Set(t.Context(), "k", "v", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	works := func(tries int) {
		t.Helper()
		for i := range tries {
			got := pipeGets(p, time.Second, "k", "k")
			if got[0].err == nil && got[1].err == nil {
				if string(got[0].raw) != "v" || string(got[1].raw) != "v" {
					t.Fatalf("read %q, %q", got[0].raw, got[1].raw)
				}
				return
			}
			if got[0].raw != nil || got[1].raw != nil {
				t.Fatalf("try %d: a value beside an error: %q %v, %q %v", i, got[0].raw, got[0].err, got[1].raw, got[1].err)
			}
		}
		t.Fatalf("no read within %d batches", tries)
	}
	set()
	works(1)

	srv.Freeze()
	got := pipeGets(p, 50*time.Millisecond, "k", "k")
	srv.Thaw()
	for i, r := range got {
		if r.err == nil || r.raw != nil {
			t.Fatalf("frozen Redis, GET %d: %q %v, want an error", i, r.raw, r.err)
		}
	}
	works(1) // a new connection

	srv.Restart()
	set()
	works(2)
}

// TestPipeDialerModes: only a standalone client's store reads on a connection of its own.
// A cluster's keys live on many nodes, and under Sentinel go-redis follows the failovers.
func TestPipeDialerModes(t *testing.T) {
	for name, o := range map[string]RedisClientOptions{
		"cluster":  {ClusterAddrs: []string{"127.0.0.1:1"}},
		"sentinel": {SentinelMaster: "m", SentinelAddrs: []string{"127.0.0.1:1"}},
	} {
		c, err := NewRedisClient(o)
		if err != nil {
			t.Fatal(err)
		}
		if pipeDialer(c) != nil {
			t.Errorf("%s: a pipe", name)
		}
		c.Close()
	}
}

// TestGetPipeRefusesOddReplies: whatever a GET would not answer is a protocol error (the
// connection is dropped); an error reply is that GET's error alone.
func TestGetPipeRefusesOddReplies(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    string // the value; "" with err
		nilKey  bool
		replyOK bool // an error reply: the connection stays
	}{
		{in: "$5\r\nhello\r\n", want: "hello"},
		{in: "$0\r\n\r\n", want: ""},
		{in: "$-1\r\n", nilKey: true},
		{in: "-WRONGTYPE no\r\n", replyOK: true},
		{in: "$5\r\nhelloXX"},
		{in: "$5\r\nhel"},
		{in: "$abc\r\n"},
		{in: "$-2\r\n"},
		{in: "$99999999999\r\n"},
		{in: ":1\r\n"},
		{in: "+OK\r\n"},
		{in: "*1\r\n$1\r\na\r\n"},
		{in: "$5\n"},
		{in: ""},
	} {
		p := &getPipe{r: bufio.NewReader(strings.NewReader(c.in))}
		raw, err := p.readBulk()
		var re replyError
		switch {
		case c.nilKey:
			if !errors.Is(err, redis.Nil) || raw != nil {
				t.Errorf("%q: %q %v, want redis.Nil", c.in, raw, err)
			}
		case c.replyOK:
			if !errors.As(err, &re) {
				t.Errorf("%q: %q %v, want a reply error", c.in, raw, err)
			}
		case c.want != "" || c.in == "$0\r\n\r\n":
			if err != nil || string(raw) != c.want {
				t.Errorf("%q: %q %v, want %q", c.in, raw, err, c.want)
			}
		default:
			if err == nil || errors.Is(err, redis.Nil) || errors.As(err, &re) {
				t.Errorf("%q: %q %v, want an error that drops the connection", c.in, raw, err)
			}
		}
	}
}

// TestPipeDialerSetsUp: the pipe's connection is authenticated as the client's, and one
// refused at AUTH or SELECT is an error of the dial, never a connection that answers GETs
// with errors later.
func TestPipeDialerSetsUp(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "pw", "--databases", "4")
	for _, c := range []struct {
		name string
		o    RedisClientOptions
		ok   bool
	}{
		{"password", RedisClientOptions{URL: "redis://" + srv.Addr() + "/3", Password: "pw"}, true},
		{"wrong password", RedisClientOptions{URL: "redis://" + srv.Addr(), Password: "nope"}, false},
		{"no password", RedisClientOptions{URL: "redis://" + srv.Addr()}, true}, // refused at its first GET
		{"a database the server lacks", RedisClientOptions{URL: "redis://" + srv.Addr() + "/9", Password: "pw"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			client, err := NewRedisClient(c.o)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			conn, err := pipeDialer(client)(ctx)
			if (err == nil) != c.ok {
				t.Fatalf("dial: %v, want success %v", err, c.ok)
			}
			if conn != nil {
				conn.Close()
			}
			if err != nil && strings.Contains(err.Error(), "nope") {
				t.Fatalf("the error names the password: %v", err)
			}
		})
	}
}

// TestGetPipeDropsUnaskedBytes: a connection that holds bytes beyond the replies of its last
// batch (a reply no GET asked for) is not read on: the next batch dials a new one, so a
// reply is never taken for another key's.
func TestGetPipeDropsUnaskedBytes(t *testing.T) {
	srv := redistest.Start(t)
	p, c := pipeFor(t, srv.Addr(), "0")
	if err := c.Set(t.Context(), "k", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if got := pipeGets(p, time.Second, "k"); string(got[0].raw) != "v" {
		t.Fatalf("first read %q %v", got[0].raw, got[0].err)
	}
	first := p.conn
	// A reply nobody asked for, as if left in the reader by a server or proxy out of step.
	p.r = bufio.NewReader(io.MultiReader(strings.NewReader("$5\r\nstale\r\n"), first))
	if _, err := p.r.Peek(1); err != nil {
		t.Fatal(err)
	}
	if got := pipeGets(p, time.Second, "k"); string(got[0].raw) != "v" || got[0].err != nil {
		t.Fatalf("after unasked bytes: %q %v, want v from a new connection", got[0].raw, got[0].err)
	}
	if p.conn == first {
		t.Fatal("the connection holding unasked bytes was read on")
	}
}

// TestGetPipeRedialsWhenIdle: a connection unused for longer than pipeMaxIdle is not written
// to (a server or middlebox may have closed it meanwhile); one used recently is kept.
func TestGetPipeRedialsWhenIdle(t *testing.T) {
	srv := redistest.Start(t)
	p, c := pipeFor(t, srv.Addr(), "0")
	if err := c.Set(t.Context(), "k", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	pipeGets(p, time.Second, "k")
	first := p.conn
	if got := pipeGets(p, time.Second, "k"); string(got[0].raw) != "v" || p.conn != first {
		t.Fatalf("a connection in use was replaced (%q %v)", got[0].raw, got[0].err)
	}
	p.used = time.Now().Add(-pipeMaxIdle - time.Second)
	if got := pipeGets(p, time.Second, "k"); string(got[0].raw) != "v" || p.conn == first {
		t.Fatalf("an idle connection was written to (%q %v)", got[0].raw, got[0].err)
	}
}
