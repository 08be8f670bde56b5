// weight_arena.h: one growing block of memory for a model's packed weight matrices, backed by 2 MiB
// transparent huge pages where the OS offers them (Linux, THP in "madvise" or "always" mode).
//
// Why: a decode streams every weight once. On 4 KiB pages a 24 MB model spans ~6,000 pages, and the
// TLB misses and page-bounded hardware prefetch cost about a tenth of a decode on the CPUs we measured;
// on huge pages it spans a dozen.
//
// Invariants: allocate() returns 64-byte aligned, zeroed memory that stays valid and in place until the
// arena is destroyed (chunks are never moved or freed early). Memory is reserved in chunks of at least
// kChunkBytes of address space; only the pages that allocations touch become resident.
//
// Threads: allocate() is for the thread building a model (not thread-safe); once built, the memory is
// read by any thread. Owners share the arena (std::shared_ptr) so the matrices keep it alive.
#pragma once

#include <cstddef>
#include <vector>

namespace ssd {

class WeightArena {
 public:
  static constexpr size_t kHugePage = size_t{2} << 20;
  static constexpr size_t kChunkBytes = size_t{32} << 20;

  WeightArena() = default;
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;
  ~WeightArena();

  // `bytes` of zeroed memory, 64-byte aligned. Throws std::bad_alloc when the OS refuses.
  void* allocate(size_t bytes);

  size_t bytes_used() const;  // the sum of the allocations, with their alignment padding

 private:
  struct Chunk {
    void* map = nullptr;     // what was mapped (released on destruction)
    size_t map_bytes = 0;
    char* base = nullptr;    // the 2 MiB aligned start inside it
    size_t size = 0, used = 0;
  };
  Chunk map_chunk(size_t bytes);
  std::vector<Chunk> chunks_;
};

}  // namespace ssd
