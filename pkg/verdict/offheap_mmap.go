//go:build (linux || darwin) && !race

package verdict

import (
	"syscall"
	"unsafe"
)

// allocSlab returns a zeroed slab of slots and index entries outside the Go
// heap, in one anonymous private mapping, and the function that unmaps it.
// Pages cost resident memory only once written: slots are handed out in
// order, so an idle tier's slab costs about nothing.
//
// Why not make: the garbage collector sizes its next cycle from the live
// heap (GOGC=100 lets the heap grow to twice it before collecting), so a
// 100 MiB slab on the heap would let another 100 MiB of short-lived garbage
// pile up between collections, doubling the tier's cost in RSS. Memory the
// runtime does not manage is neither counted nor scanned. That is also why
// compactSlot must never hold a Go pointer: the collector would not see it.
//
// With -race the heap is used instead (offheap_heap.go): the race detector
// watches only the Go heap, and the tests must exercise the slab under it.
//
// If the mapping fails (an address-space limit), the slab goes on the heap.
func allocSlab(slots, index int) ([]compactSlot, []uint32, func()) {
	slotBytes := slots * int(unsafe.Sizeof(compactSlot{}))
	n := slotBytes + index*4
	b, err := syscall.Mmap(-1, 0, max(n, 1), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]compactSlot, slots), make([]uint32, index), func() {}
	}
	// A mapping is page-aligned, and a slot's size is a multiple of 8, so
	// both views are aligned.
	var s []compactSlot
	var x []uint32
	if slots > 0 {
		s = unsafe.Slice((*compactSlot)(unsafe.Pointer(&b[0])), slots)
	}
	if index > 0 {
		x = unsafe.Slice((*uint32)(unsafe.Pointer(&b[slotBytes])), index)
	}
	return s, x, func() { _ = syscall.Munmap(b) }
}
