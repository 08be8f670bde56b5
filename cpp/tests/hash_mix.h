// hash_mix.h: a 32-bit integer hash (xorshift-multiply finaliser) for tests whose toy models need
// deterministic pseudo-random logits from token ids and positions. Pure function.
#pragma once
#include <cstdint>

namespace ssd_test {

inline std::uint32_t mix(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

}  // namespace ssd_test
