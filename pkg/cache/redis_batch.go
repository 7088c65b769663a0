package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// WriteKind is what a [WriteOp] does.
type WriteKind uint8

// The writes a batch can carry.
const (
	WriteSet    WriteKind = iota + 1 // overwrite value and expiry (Redis.Set)
	WriteAdd                         // store unless a live entry is held (Redis.Add)
	WriteDelete                      // remove the key (Redis.Delete)
)

func (k WriteKind) op() string {
	switch k {
	case WriteSet:
		return opSet
	case WriteAdd:
		return opAdd
	}
	return opDelete
}

// WriteOp is one write of a batch sent by [Redis.WriteBatch]. The caller fills Kind, Key, Value
// and ExpiresAt; WriteBatch fills the results.
type WriteOp struct {
	Kind WriteKind
	Key  string
	// Value is the payload (without the envelope) of a set or an add.
	Value []byte
	// ExpiresAt is the entry's absolute expiry by the store's clock, fixed when the write was
	// decided, so that the time a write waits in a queue does not lengthen the entry's life. A
	// set or add whose expiry has passed by the time it is sent is sent as a delete (set) or not
	// at all (add), as Set and Add with ttl <= 0 would.
	ExpiresAt time.Time

	// Err is the write's outcome: nil once Redis applied it (or, for an add, refused it because
	// a live entry is held).
	Err error
	// Added reports, for an add, whether it stored Value.
	Added bool
	// Held and HeldExpiry are, for an add that was refused, the payload and expiry of the live
	// entry that refused it (nil if it could not be decoded), so that the writer can keep the
	// value in force instead of its own.
	Held       []byte
	HeldExpiry time.Time
}

// addHeldScript is addScript for a batch: it returns 1 when it stored the envelope, or else the
// live envelope that refused it, so that one round trip both tries the add and fetches the value
// in force.
const addHeldScript = `
local v = redis.call('GET', KEYS[1])
if v and #v >= 9 and string.byte(v, 1) == 1 then
  local exp = 0
  for i = 2, 9 do exp = exp * 256 + string.byte(v, i) end
  if exp > tonumber(ARGV[3]) then return v end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`

// WriteBatch sends ops, in order, in one pipelined round trip (one per node in Cluster mode),
// bounded by RedisOptions.WriteTimeout, and fills each op's results. Redis applies them in the
// order given (one connection), so a delete after a set of the same key wins.
//
// The batch is one call for the circuit breaker: refused as a whole while it is open (every op
// gets ErrCircuitOpen), and one success or failure. A failed op is reported to the Observer
// under its own operation name, as the single-key methods report theirs.
func (r *Redis) WriteBatch(ctx context.Context, ops []WriteOp) {
	if len(ops) == 0 {
		return
	}
	if err := ctx.Err(); err != nil {
		setErr(ops, err)
		return
	}
	probe, ok := r.circuit.allow()
	if !ok {
		setErr(ops, ErrCircuitOpen)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, r.writeTimeout)
	defer cancel()
	now := r.now()
	cmds := make([]redis.Cmder, len(ops))
	sent := false
	pipe := r.c.Pipeline()
	for i := range ops {
		op := &ops[i]
		ttl := op.ExpiresAt.Sub(now)
		switch {
		case op.Kind == WriteDelete || op.Kind == WriteSet && ttl <= 0:
			cmds[i] = pipe.Del(cctx, op.Key)
		case op.Kind == WriteSet:
			cmds[i] = pipe.Set(cctx, op.Key, encodeEnvelope(op.ExpiresAt, op.Value), redisTTL(ttl))
		case ttl <= 0: // an add that came too late stores nothing
			continue
		default:
			env := encodeEnvelope(op.ExpiresAt, op.Value)
			cmds[i] = r.addHeld.EvalSha(cctx, pipe, []string{op.Key}, env, redisTTL(ttl).Milliseconds(), now.UnixMilli())
		}
		sent = true
	}
	if !sent {
		r.circuit.neutral(probe)
		return
	}
	_, err := pipe.Exec(cctx)
	if err != nil && !errors.Is(err, redis.Nil) && hasNoScript(cmds) {
		// The script is not cached on (some) node: load it by sending the adds again in full.
		// Only the adds that failed so are resent; the other commands have been applied.
		err = r.resendAdds(cctx, ops, cmds, now)
	}
	var first error
	for i := range ops {
		if cmds[i] == nil {
			continue
		}
		if e := cmds[i].Err(); e != nil && !errors.Is(e, redis.Nil) {
			ops[i].Err = fmt.Errorf("cache: redis %s: %w", ops[i].Kind.op(), e)
			if first == nil {
				first = e
			}
			continue
		}
		if ops[i].Kind == WriteAdd {
			r.addResult(&ops[i], cmds[i])
		}
	}
	if first == nil && err != nil && !errors.Is(err, redis.Nil) {
		first = err
	}
	switch {
	case first == nil:
		r.circuit.success(probe)
	case callerGaveUp(ctx):
		r.circuit.neutral(probe)
	default:
		for i := range ops {
			if ops[i].Err != nil {
				r.obs.Error(tierRedis, ops[i].Kind.op())
			}
		}
		r.circuit.failure(probe, first)
	}
}

// addResult reads an add's reply: 1 (stored) or the live envelope that refused it.
func (r *Redis) addResult(op *WriteOp, cmd redis.Cmder) {
	c, ok := cmd.(*redis.Cmd)
	if !ok {
		return
	}
	switch v := c.Val().(type) {
	case int64:
		op.Added = v == 1
	case string:
		if p, exp, ok := decodeEnvelope([]byte(v)); ok {
			op.Held, op.HeldExpiry = p, exp
		}
	}
}

// resendAdds sends again, with EVAL, the adds refused with NOSCRIPT.
func (r *Redis) resendAdds(ctx context.Context, ops []WriteOp, cmds []redis.Cmder, now time.Time) error {
	pipe := r.c.Pipeline()
	for i := range ops {
		if cmds[i] == nil || !isNoScript(cmds[i].Err()) {
			continue
		}
		ttl := ops[i].ExpiresAt.Sub(now)
		env := encodeEnvelope(ops[i].ExpiresAt, ops[i].Value)
		cmds[i] = r.addHeld.Eval(ctx, pipe, []string{ops[i].Key}, env, redisTTL(ttl).Milliseconds(), now.UnixMilli())
	}
	_, err := pipe.Exec(ctx)
	return err
}

func hasNoScript(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if c != nil && isNoScript(c.Err()) {
			return true
		}
	}
	return false
}

func isNoScript(err error) bool { return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") }

func setErr(ops []WriteOp, err error) {
	for i := range ops {
		ops[i].Err = err
	}
}
