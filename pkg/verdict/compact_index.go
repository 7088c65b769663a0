package verdict

import (
	"crypto/sha256"
	"hash/maphash"
)

func (t *CompactTier) hash(h *[sha256.Size]byte) uint64 { return maphash.Bytes(t.seed, h[:]) }

// alloc returns a slot for a new entry in s, whose lock is held: a free
// one, else one never used, else the one the CLOCK hand reclaims.
func (t *CompactTier) alloc(s *compactShard, now int64) uint32 {
	if s.free != 0 {
		i := s.free - 1
		s.free = s.slots[i].grant
		return i
	}
	if int(s.used) < len(s.slots) {
		s.used++
		return s.used - 1
	}
	// Every slot holds an entry. The hand clears the marks it passes, so
	// it stops within one turn and a bit.
	for {
		i := s.hand
		if s.hand++; int(s.hand) == len(s.slots) {
			s.hand = 0
		}
		if s.slots[i].deadline > now {
			if s.unmark(i) {
				continue
			}
			t.obs.Evicted("local")
		}
		t.removeAt(s, t.position(s, i))
		s.unmark(i)
		return i
	}
}

// home is where hash h's probe starts in s.index.
func (s *compactShard) home(h uint64) uint32 {
	return uint32((uint64(uint32(h)) * uint64(len(s.index))) >> 32)
}

// tag is the part of an index entry taken from hash h (see slotBits).
func (t *CompactTier) tag(h uint64) uint32 { return uint32(h>>32) << t.slotBits }

// slot is the slot number in index entry v (not 0).
func (t *CompactTier) slot(v uint32) uint32 { return v&(1<<t.slotBits-1) - 1 }

// find returns the index position of the entry for (ns, hash) in s.
func (t *CompactTier) find(s *compactShard, h uint64, ns uint32, hash *[sha256.Size]byte) (uint32, bool) {
	n, tag, mask := uint32(len(s.index)), t.tag(h), uint32(1)<<t.slotBits-1
	for pos := s.home(h); ; {
		v := s.index[pos]
		if v == 0 {
			return 0, false
		}
		if v&^mask == tag {
			if e := &s.slots[v&mask-1]; e.ns == ns && e.hash == *hash {
				return pos, true
			}
		}
		if pos++; pos == n {
			pos = 0
		}
	}
}

// position returns the index position of slot i, which holds an entry.
func (t *CompactTier) position(s *compactShard, i uint32) uint32 {
	n, mask := uint32(len(s.index)), uint32(1)<<t.slotBits-1
	pos := s.home(t.hash(&s.slots[i].hash))
	for s.index[pos]&mask != i+1 {
		if pos++; pos == n {
			pos = 0
		}
	}
	return pos
}

// insert files slot i under hash h.
func (t *CompactTier) insert(s *compactShard, h uint64, i uint32) {
	n := uint32(len(s.index))
	pos := s.home(h)
	for s.index[pos] != 0 {
		if pos++; pos == n {
			pos = 0
		}
	}
	s.index[pos] = t.tag(h) | (i + 1)
	s.live++
}

// removeAt empties index position pos and moves back the entries after it
// that it would otherwise cut off from their home (backward-shift
// deletion), so that every probe still finds what it looks for.
func (t *CompactTier) removeAt(s *compactShard, pos uint32) {
	n := uint32(len(s.index))
	hole := pos
	for j := pos; ; {
		if j++; j == n {
			j = 0
		}
		v := s.index[j]
		if v == 0 {
			break
		}
		// The entry at j stays if its home is cyclically in (hole, j].
		home := s.home(t.hash(&s.slots[t.slot(v)].hash))
		if hole <= j && hole < home && home <= j || hole > j && (hole < home || home <= j) {
			continue
		}
		s.index[hole] = v
		hole = j
	}
	s.index[hole] = 0
	s.live--
}
