package keytable

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// key and value are larger than the tiny allocator's 16 bytes, whose
// blocks can keep an unreachable object's cleanup from ever running.
type key struct {
	id int
	_  [32]byte
}

type value struct {
	id int
	_  [32]byte
}

// table returns a Table and a Get that counts the computations.
func table() (*Table[key, value], func(*key) (*value, error), *atomic.Int32) {
	t := &Table[key, value]{}
	var computed atomic.Int32
	get := func(k *key) (*value, error) {
		return t.Get(k, func(v *value) bool { return v.id == k.id }, func() (*value, error) {
			computed.Add(1)
			if k.id < 0 {
				return nil, errors.New("no value for a negative id")
			}
			return &value{id: k.id}, nil
		})
	}
	return t, get, &computed
}

// TestComputedOncePerKey: a key's value is computed on its first Get and
// kept; another object with the same contents is another key.
func TestComputedOncePerKey(t *testing.T) {
	_, get, computed := table()
	a := &key{id: 1}
	for range 3 {
		if v, err := get(a); err != nil || v.id != 1 {
			t.Fatalf("got %v, %v", v, err)
		}
	}
	if n := computed.Load(); n != 1 {
		t.Fatalf("computed %d times for one key", n)
	}
	if _, err := get(&key{id: 1}); err != nil {
		t.Fatal(err)
	}
	if n := computed.Load(); n != 2 {
		t.Fatalf("computed %d times for two keys", n)
	}
}

// TestChangedKeyIsComputedAgain: a key changed in place gets the value of
// its new contents, once.
func TestChangedKeyIsComputedAgain(t *testing.T) {
	_, get, computed := table()
	k := &key{id: 1}
	if _, err := get(k); err != nil {
		t.Fatal(err)
	}
	k.id = 2
	for range 2 {
		if v, err := get(k); err != nil || v.id != 2 {
			t.Fatalf("after the change: got %v, %v", v, err)
		}
	}
	if n := computed.Load(); n != 2 {
		t.Fatalf("computed %d times, want 2", n)
	}
}

// TestErrorsAreNotKept: a key whose value cannot be computed is asked
// again each time, and keeps no entry.
func TestErrorsAreNotKept(t *testing.T) {
	tab, get, computed := table()
	k := &key{id: -1}
	for range 2 {
		if _, err := get(k); err == nil {
			t.Fatal("no error")
		}
	}
	if n, l := computed.Load(), tab.Len(); n != 2 || l != 0 {
		t.Fatalf("computed %d times, %d entries; want 2 and 0", n, l)
	}
	k.id = 3 // now it has a value
	if v, err := get(k); err != nil || v.id != 3 {
		t.Fatalf("got %v, %v", v, err)
	}
}

// TestEntriesGoWithTheirKeys: the table keeps neither its keys nor, once
// they are collected, their entries.
func TestEntriesGoWithTheirKeys(t *testing.T) {
	tab, get, _ := table()
	func() {
		for i := range 10 {
			if _, err := get(&key{id: i}); err != nil {
				t.Fatal(err)
			}
		}
	}()
	if n := tab.Len(); n != 10 || tab.Held() != 10 {
		t.Fatalf("%d entries, %d held, after ten keys", n, tab.Held())
	}
	deadline := time.Now().Add(10 * time.Second)
	for tab.Len() > 0 || tab.Held() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries and %d values held of ten keys long gone", tab.Len(), tab.Held())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMaxBoundsTheValuesHeld: with Max values held, a new key gets
// ErrFull and nothing is computed; a key already held still gets its
// value; once held keys are collected, new keys get values again.
func TestMaxBoundsTheValuesHeld(t *testing.T) {
	tab, get, computed := table()
	tab.Max = 2
	a, b := &key{id: 1}, &key{id: 2}
	for _, k := range []*key{a, b} {
		if _, err := get(k); err != nil {
			t.Fatal(err)
		}
	}
	c := &key{id: 3}
	if _, err := get(c); !errors.Is(err, ErrFull) {
		t.Fatalf("a third key: %v, want ErrFull", err)
	}
	if n := computed.Load(); n != 2 {
		t.Fatalf("%d computations, want 2: none for the key refused", n)
	}
	if v, err := get(a); err != nil || v.id != 1 {
		t.Fatalf("a held key: %v, %v", v, err)
	}
	a.id = 10 // changed: computed again within the bound, replacing its value
	if v, err := get(a); err != nil || v.id != 10 {
		t.Fatalf("a changed key: %v, %v", v, err)
	}
	if tab.Held() > 3 {
		t.Fatalf("%d held, more than the bound and the replaced value", tab.Held())
	}
	runtime.KeepAlive(b)
	a, b = nil, nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := get(c)
		if err == nil {
			if v.id != 3 {
				t.Fatalf("got %v", v)
			}
			break
		}
		if !errors.Is(err, ErrFull) || time.Now().After(deadline) {
			t.Fatalf("after the held keys went: %v", err)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
}

// TestConcurrentFirstUse: goroutines asking for one new key at once all
// get its value, and one entry is kept (run with -race).
func TestConcurrentFirstUse(t *testing.T) {
	tab, get, _ := table()
	k := &key{id: 7}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if v, err := get(k); err != nil || v.id != 7 {
				t.Errorf("got %v, %v", v, err)
			}
		})
	}
	wg.Wait()
	if n := tab.Len(); n != 1 {
		t.Fatalf("%d entries for one key", n)
	}
	runtime.KeepAlive(k)
}
