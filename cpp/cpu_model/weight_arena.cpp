// weight_arena.cpp: see weight_arena.h.
#include "weight_arena.h"

#include <cstring>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace ssd {
namespace {

constexpr size_t kAlign = 64;

size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

}  // namespace

WeightArena::~WeightArena() {
  for (const Chunk& c : chunks_) {
#if defined(__linux__)
    munmap(c.map, c.map_bytes);
#else
    ::operator delete(c.map, std::align_val_t{kHugePage});
#endif
  }
}

// A fresh chunk of at least `bytes`, aligned to a huge page. mmap gives zeroed pages; the mapping is
// over-sized by one huge page so that an aligned start exists inside it.
WeightArena::Chunk WeightArena::map_chunk(size_t bytes) {
  Chunk c;
  c.size = round_up(bytes > kChunkBytes ? bytes : kChunkBytes, kHugePage);
#if defined(__linux__)
  c.map_bytes = c.size + kHugePage;
  c.map = mmap(nullptr, c.map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (c.map == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<size_t>(c.map);
  c.base = static_cast<char*>(c.map) + (round_up(start, kHugePage) - start);
#ifdef MADV_HUGEPAGE
  madvise(c.base, c.size, MADV_HUGEPAGE);  // advice only: without THP the chunk keeps 4 KiB pages
#endif
#else
  c.map_bytes = c.size;
  c.map = ::operator new(c.size, std::align_val_t{kHugePage});
  std::memset(c.map, 0, c.size);
  c.base = static_cast<char*>(c.map);
#endif
  return c;
}

void* WeightArena::allocate(size_t bytes) {
  bytes = round_up(bytes == 0 ? 1 : bytes, kAlign);
  if (chunks_.empty() || chunks_.back().size - chunks_.back().used < bytes) chunks_.push_back(map_chunk(bytes));
  Chunk& c = chunks_.back();
  void* out = c.base + c.used;
  c.used += bytes;
  return out;
}

size_t WeightArena::bytes_used() const {
  size_t total = 0;
  for (const Chunk& c : chunks_) total += c.used;
  return total;
}

}  // namespace ssd
