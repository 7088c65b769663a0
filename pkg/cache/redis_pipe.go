package cache

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// getPipe is a connection of the store's own to Redis for the read batcher's GETs: it writes a
// batch of GET commands at once and reads their bulk-string replies in order (RESP2: the
// connection never says HELLO), with none of a general client's per-command objects. One
// batch at a time uses it: the batcher's sender's, or a caller's own GET when nothing else is
// under way (readBatcher). Every other command goes through go-redis.
type getPipe struct {
	dial func(ctx context.Context) (net.Conn, error)
	conn net.Conn
	r    *bufio.Reader
	w    []byte
	used time.Time // when conn last answered a batch
}

// pipeMaxIdle is how long the connection may sit unused before a batch dials a new one rather
// than write to it: a server's idle timeout or a middlebox may have closed it meanwhile, which
// would fail that batch (go-redis checks a pooled connection with a system call each time
// instead).
const pipeMaxIdle = 30 * time.Second

// errProtocol is a reply that is not what a GET answers: the connection is dropped.
var errProtocol = errors.New("cache: redis: unexpected reply")

// maxGetReply bounds the value a GET may return, far above any entry the store writes: a
// longer one is a protocol error rather than an allocation of whatever size the reply names.
const maxGetReply = 8 << 20

// replyError is an error reply (such as WRONGTYPE) to one GET; the connection stays usable.
type replyError string

func (e replyError) Error() string { return "cache: redis: " + string(e) }

// gets sends the batch's GETs and hands each its reply, all by deadline (the connection's
// deadline for dialling, writing and reading): every GET of batch gets exactly one answer. An
// error that leaves the connection unusable is returned for every GET not yet answered, and
// the next batch dials a new connection.
func (p *getPipe) gets(ctx context.Context, deadline time.Time, batch []*readReq) {
	fail := func(from int, err error) {
		for _, req := range batch[from:] {
			req.done <- readResult{nil, err}
		}
	}
	now := time.Now()
	if !now.Before(deadline) {
		// Too late for every GET of the batch: nothing is sent, and the connection stays.
		fail(0, context.DeadlineExceeded)
		return
	}
	if p.conn != nil && p.r.Buffered() > 0 {
		// Bytes no GET asked for: the replies may no longer line up with the GETs, and a
		// value read for one key could be another's. Never read on from there.
		p.close()
	}
	if p.conn != nil && now.Sub(p.used) > pipeMaxIdle {
		p.close()
	}
	if p.conn == nil {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		c, err := p.dial(dctx)
		cancel()
		if err != nil {
			fail(0, err)
			return
		}
		p.conn, p.r = c, bufio.NewReaderSize(c, 16<<10)
	}
	_ = p.conn.SetDeadline(deadline)
	w := p.w[:0]
	for _, req := range batch {
		w = appendCommand(w, "GET", req.key)
	}
	p.w = w
	if _, err := p.conn.Write(w); err != nil {
		p.close()
		fail(0, err)
		return
	}
	for i, req := range batch {
		raw, err := p.readBulk()
		if _, reply := err.(replyError); err != nil && err != redis.Nil && !reply { //nolint:errorlint,err113 // readBulk's own errors, unwrapped
			p.close()
			fail(i, err)
			return
		}
		req.done <- readResult{raw, err}
	}
	p.used = now
}

func (p *getPipe) close() {
	if p.conn != nil {
		_ = p.conn.Close()
		p.conn, p.r = nil, nil
	}
}

// readBulk reads one reply to a GET: a bulk string (a new slice), the null bulk string
// (redis.Nil), or an error reply.
func (p *getPipe) readBulk() ([]byte, error) {
	line, err := p.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, errProtocol
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '$':
		n, err := strconv.Atoi(string(body))
		switch {
		case err != nil || n < -1 || n > maxGetReply:
			return nil, errProtocol
		case n == -1:
			return nil, redis.Nil
		}
		raw := make([]byte, n+2)
		if _, err := io.ReadFull(p.r, raw); err != nil {
			return nil, err
		}
		if raw[n] != '\r' || raw[n+1] != '\n' {
			return nil, errProtocol
		}
		return raw[:n:n], nil
	case '-':
		return nil, replyError(body)
	}
	return nil, fmt.Errorf("%w: %q", errProtocol, line[0])
}

// pipeDialer returns how to open a getPipe's connection to the Redis c talks to, or nil when the
// store must read through c alone: a cluster (keys live on many nodes), Sentinel (c follows
// failovers; a connection of the store's own would not), or credentials that only c knows how to
// obtain. The connection is dialled to c's address with c's TLS configuration and dial
// timeout, authenticated with c's credentials and put on c's database.
//
// The pipe reads with RESP2 (it never says HELLO) whatever protocol c speaks: a GET's reply is
// the same bulk string in both.
func pipeDialer(c redis.UniversalClient) func(ctx context.Context) (net.Conn, error) {
	rc, ok := c.(*redis.Client)
	if !ok {
		return nil
	}
	opt := rc.Options()
	if opt.Addr == "FailoverClient" || opt.OnConnect != nil ||
		opt.CredentialsProvider != nil || opt.CredentialsProviderContext != nil || opt.StreamingCredentialsProvider != nil {
		return nil
	}
	var hello [][]string
	switch {
	case opt.Username != "":
		hello = append(hello, []string{"AUTH", opt.Username, opt.Password})
	case opt.Password != "":
		hello = append(hello, []string{"AUTH", opt.Password})
	}
	if opt.DB != 0 {
		hello = append(hello, []string{"SELECT", strconv.Itoa(opt.DB)})
	}
	// Dialled as go-redis's own dialer dials (NewRedisClient sets none of its own), but within
	// ctx even for TLS, whose handshake go-redis bounds by DialTimeout alone: a batch's GETs
	// wait for the dial, and must have their answers by their deadline.
	netDialer := &net.Dialer{Timeout: opt.DialTimeout}
	dial := netDialer.DialContext
	if opt.TLSConfig != nil {
		dial = (&tls.Dialer{NetDialer: netDialer, Config: opt.TLSConfig}).DialContext
	}
	return func(ctx context.Context) (net.Conn, error) {
		conn, err := dial(ctx, opt.Network, opt.Addr)
		if err != nil {
			return nil, err
		}
		if len(hello) == 0 {
			return conn, nil
		}
		if d, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(d)
		}
		if err := setUp(conn, hello); err != nil {
			_ = conn.Close()
			return nil, err
		}
		return conn, nil
	}
}

// setUp sends the commands of a new connection (AUTH, SELECT) and checks that each is answered
// +OK and nothing more.
func setUp(conn net.Conn, cmds [][]string) error {
	var w []byte
	for _, cmd := range cmds {
		w = appendCommand(w, cmd...)
	}
	if _, err := conn.Write(w); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	for range cmds {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if string(line) != "+OK\r\n" {
			// An error reply names no secret (AUTH's says the password is wrong, not what it
			// is).
			return fmt.Errorf("cache: redis: connection set-up refused: %q", string(line))
		}
	}
	if r.Buffered() > 0 {
		return errProtocol
	}
	return nil
}

// appendCommand appends a command in RESP's request form: an array of bulk strings.
func appendCommand(w []byte, args ...string) []byte {
	w = append(w, '*')
	w = strconv.AppendInt(w, int64(len(args)), 10)
	w = append(w, "\r\n"...)
	for _, a := range args {
		w = append(w, '$')
		w = strconv.AppendInt(w, int64(len(a)), 10)
		w = append(w, "\r\n"...)
		w = append(w, a...)
		w = append(w, "\r\n"...)
	}
	return w
}
