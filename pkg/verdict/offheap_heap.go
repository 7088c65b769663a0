//go:build !((linux || darwin) && !race)

package verdict

// allocSlab, where no anonymous mapping is used (other systems, and -race
// builds, whose detector watches only the Go heap), allocates on the heap:
// the slab holds no pointer, so the collector never scans it, but it counts
// towards the heap size that paces collections (see offheap_mmap.go).
func allocSlab(slots, index int) ([]compactSlot, []uint32, func()) {
	return make([]compactSlot, slots), make([]uint32, index), func() {}
}
