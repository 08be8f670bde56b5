// speculation_cache.cpp: see speculation_cache.h.
#include "speculation_cache.h"

#include <stdexcept>
#include <string>
#include <utility>

namespace ssd {

SpeculationCache::SpeculationCache(int K) : K_(K) {
  if (K < 0) {
    throw std::invalid_argument("SpeculationCache: K = " + std::to_string(K) + " is invalid: allowed >= 0");
  }
}

void SpeculationCache::check_key(int k, std::int32_t r, const char* what) const {
  if (k < 0 || k > K_ || r < 0) {
    throw std::out_of_range(std::string("SpeculationCache::") + what + ": key (k=" + std::to_string(k) +
                            ", r=" + std::to_string(r) + ") needs k in 0.." + std::to_string(K_) +
                            " and r >= 0");
  }
}

void SpeculationCache::begin_round(std::int64_t seq_id) {
  SeqState& st = seqs_[seq_id];
  st.entries.clear();
  st.open = true;
}

bool SpeculationCache::insert(std::int64_t seq_id, int k, std::int32_t r, Speculation spec) {
  check_key(k, r, "insert");
  if (!spec.valid(K_)) {
    throw std::invalid_argument("SpeculationCache::insert: invalid Speculation (" +
                                std::to_string(spec.size()) + " tokens, K = " + std::to_string(K_) +
                                ", onehot=" + (spec.onehot ? "true" : "false") +
                                ", rows=" + (spec.has_rows() ? "yes" : "no") + ", saguaro_f " +
                                std::to_string(spec.saguaro_f.size()) + ")");
  }
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end() || !it->second.open) return false;
  it->second.entries.push_back(Entry{k, r, std::move(spec)});
  return true;
}

std::optional<Speculation> SpeculationCache::lookup(std::int64_t seq_id, int k, std::int32_t r) {
  check_key(k, r, "lookup");
  std::vector<Entry> round;  // the consumed round
  auto it = seqs_.find(seq_id);
  if (it != seqs_.end()) {
    round.swap(it->second.entries);
    it->second.open = false;
  }
  for (auto e = round.rbegin(); e != round.rend(); ++e) {  // reverse: the later insert wins
    if (e->k != k || e->r != r) continue;
    std::optional<Speculation> hit(std::move(e->spec));
    hit->source = SpecSource::kCacheHit;
    return hit;
  }
  return std::nullopt;
}

void SpeculationCache::erase_sequence(std::int64_t seq_id) { seqs_.erase(seq_id); }

void SpeculationCache::clear() { seqs_.clear(); }

std::size_t SpeculationCache::entries(std::int64_t seq_id) const {
  auto it = seqs_.find(seq_id);
  return it == seqs_.end() ? 0 : it->second.entries.size();
}

bool SpeculationCache::round_open(std::int64_t seq_id) const {
  auto it = seqs_.find(seq_id);
  return it != seqs_.end() && it->second.open;
}

std::size_t SpeculationCache::size() const {
  std::size_t n = 0;
  for (const auto& kv : seqs_) n += kv.second.entries.size();
  return n;
}

std::size_t SpeculationCache::num_sequences() const { return seqs_.size(); }

}  // namespace ssd
