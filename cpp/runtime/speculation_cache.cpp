// speculation_cache.cpp: see speculation_cache.h.
#include "speculation_cache.h"

#include <stdexcept>
#include <string>
#include <utility>

namespace ssd {

SpeculationCache::SpeculationCache(int K, Stats* stats)
    : K_(K), stats_(stats), hits_(K < 0 ? 0 : K + 1, 0), misses_(K < 0 ? 0 : K + 1, 0) {
  if (K < 0) {
    throw std::invalid_argument("SpeculationCache: K = " + std::to_string(K) + " is invalid: allowed >= 0");
  }
  if (stats != nullptr && stats->K() < K) {
    throw std::invalid_argument("SpeculationCache: Stats has K = " + std::to_string(stats->K()) +
                                " < cache K = " + std::to_string(K));
  }
}

void SpeculationCache::check_key(int k, std::int32_t r, const char* what) const {
  if (k < 0 || k > K_ || r < 0) {
    throw std::out_of_range(std::string("SpeculationCache::") + what + ": key (k=" + std::to_string(k) +
                            ", r=" + std::to_string(r) + ") needs k in 0.." + std::to_string(K_) +
                            " and r >= 0");
  }
}

void SpeculationCache::check_spec(const Speculation& spec) const {
  if (!spec.valid(K_)) {
    throw std::invalid_argument("SpeculationCache::insert: invalid Speculation (" +
                                std::to_string(spec.size()) + " tokens, K = " + std::to_string(K_) +
                                ", onehot=" + (spec.onehot ? "true" : "false") +
                                ", rows=" + (spec.has_rows() ? "yes" : "no") + ", saguaro_f " +
                                std::to_string(spec.saguaro_f.size()) + ")");
  }
}

void SpeculationCache::begin_round(std::int64_t seq_id, std::uint64_t round_tag) {
  std::vector<Entry> old;  // freed after the lock is released
  std::lock_guard<std::mutex> lk(m_);
  SeqState& st = seqs_[seq_id];
  old.swap(st.entries);
  st.open = true;
  st.tag = round_tag;
}

bool SpeculationCache::insert(std::int64_t seq_id, int k, std::int32_t r, Speculation spec) {
  check_key(k, r, "insert");
  check_spec(spec);
  std::lock_guard<std::mutex> lk(m_);
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end() || !it->second.open) return false;
  it->second.entries.push_back(Entry{k, r, std::move(spec)});
  return true;
}

std::size_t SpeculationCache::insert_batch(std::int64_t seq_id, std::vector<Entry> entries) {
  for (const Entry& e : entries) {
    check_key(e.k, e.r, "insert_batch");
    check_spec(e.spec);
  }
  std::lock_guard<std::mutex> lk(m_);
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end() || !it->second.open) return 0;
  std::vector<Entry>& dst = it->second.entries;
  if (dst.empty()) {
    dst.swap(entries);
    return dst.size();
  }
  const std::size_t n = entries.size();
  for (Entry& e : entries) dst.push_back(std::move(e));
  return n;
}

std::optional<Speculation> SpeculationCache::lookup(std::int64_t seq_id, int k, std::int32_t r,
                                                    std::uint64_t round_tag) {
  return lookup_detailed(seq_id, k, r, round_tag).spec;
}

CacheLookup SpeculationCache::lookup_detailed(std::int64_t seq_id, int k, std::int32_t r,
                                              std::uint64_t round_tag) {
  check_key(k, r, "lookup");
  CacheLookup out;
  std::vector<Entry> round;  // the consumed round, searched and freed outside the lock
  {
    std::lock_guard<std::mutex> lk(m_);
    auto it = seqs_.find(seq_id);
    if (it != seqs_.end()) {
      SeqState& st = it->second;
      out.round_open = st.open && st.tag == round_tag;
      round.swap(st.entries);
      st.open = false;
    }
  }
  if (!out.round_open) round.clear();  // a tag mismatch discards the stale round
  out.prepared_total = static_cast<int>(round.size());
  for (auto e = round.rbegin(); e != round.rend(); ++e) {  // reverse: the later insert wins
    if (e->k != k) continue;
    ++out.prepared_at_k;
    if (!out.spec && e->r == r) out.spec = std::move(e->spec);
  }
  if (out.spec) out.spec->source = SpecSource::kCacheHit;
  count(k, out.spec.has_value());
  return out;
}

void SpeculationCache::count(int k, bool hit) {
  {
    std::lock_guard<std::mutex> lk(m_);
    (hit ? hits_ : misses_)[k] += 1;
  }
  if (stats_ != nullptr) stats_->record_lookup(k, hit);
}

void SpeculationCache::erase_sequence(std::int64_t seq_id) {
  SeqState old;
  std::lock_guard<std::mutex> lk(m_);
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end()) return;
  old = std::move(it->second);
  seqs_.erase(it);
}

void SpeculationCache::clear() {
  std::unordered_map<std::int64_t, SeqState> old;
  std::lock_guard<std::mutex> lk(m_);
  old.swap(seqs_);
}

std::size_t SpeculationCache::entries(std::int64_t seq_id) const {
  std::lock_guard<std::mutex> lk(m_);
  auto it = seqs_.find(seq_id);
  return it == seqs_.end() ? 0 : it->second.entries.size();
}

bool SpeculationCache::round_open(std::int64_t seq_id) const {
  std::lock_guard<std::mutex> lk(m_);
  auto it = seqs_.find(seq_id);
  return it != seqs_.end() && it->second.open;
}

std::size_t SpeculationCache::size() const {
  std::lock_guard<std::mutex> lk(m_);
  std::size_t n = 0;
  for (const auto& kv : seqs_) n += kv.second.entries.size();
  return n;
}

std::size_t SpeculationCache::num_sequences() const {
  std::lock_guard<std::mutex> lk(m_);
  return seqs_.size();
}

std::vector<std::uint64_t> SpeculationCache::hits() const {
  std::lock_guard<std::mutex> lk(m_);
  return hits_;
}

std::vector<std::uint64_t> SpeculationCache::misses() const {
  std::lock_guard<std::mutex> lk(m_);
  return misses_;
}

}  // namespace ssd
