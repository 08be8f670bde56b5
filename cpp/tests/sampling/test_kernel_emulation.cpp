// test_kernel_emulation.cpp: the CUDA kernel bodies (cuda/verify_blocks.cuh, cuda/logits_scan_blocks.cuh),
// run on the CPU under an emulated 256-thread block (cuda_emulation.h), must reproduce the CPU reference bit
// for bit: every RowStats the row kernel computes, every accept length and next token, every draft token and
// q' probability, the fork's top-F tokens, the finite check and token masking (CpuLogitsOps) of every kernel of
// cuda/cuda_logits_ops.cu. Draft rows are read through scattered pointers, null where never read.
// This checks the GPU algorithms (radix selection, canonical lane sums, the chunked walk, the barriers: the
// emulation runs threads in a random order between barriers) on machines without a GPU; nvcc's code
// generation and the real memory model are checked by tests/test_verify_cuda.py where a GPU exists.
#include "cuda_emulation.h"  // must come first: defines __device__, threadIdx, __syncthreads, ...
#include "verify_blocks.cuh"
#include "logits_scan_blocks.cuh"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "cpu_logits_ops.h"
#include "token_mask.h"
#include "distribution.h"
#include "draft_sampler.h"
#include "verifier.h"

using namespace ssd;
using cuda_detail::BlockShared;

namespace {

#if defined(__SANITIZE_THREAD__)
constexpr int kCases = 6;  // 256 threads per emulated block are slow under TSan
#else
constexpr int kCases = 24;
#endif

struct Problem {
  int b = 0, k = 0, v = 0;
  std::vector<float> target, draft;  // draft empty: no draft logits
  std::vector<float> scattered;      // the draft rows again, in a shuffled order
  std::vector<const float*> rows;    // [b * k] row r of draft, as it lies in scattered
  std::vector<int64_t> tokens;
  std::vector<int32_t> fanout;       // empty: none
  std::vector<SeqVerifyParams> params;
};

template <class T>
T pick(std::mt19937_64& rng, std::initializer_list<T> options) {
  return options.begin()[std::uniform_int_distribution<size_t>(0, options.size() - 1)(rng)];
}

// Rows of v logits; every row keeps a finite logit at index 0 (an all -inf row has no distribution).
std::vector<float> random_logits(std::mt19937_64& rng, size_t n, int v, float scale, bool ties) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    float x = normal(rng);
    if (ties) x = std::round(x * 2.0f) / 2.0f;  // many exact ties (and some -0.0 / +0.0 pairs)
    if (unit(rng) < 0.03f && i % v != 0) x = -INFINITY;
    out[i] = x;
  }
  return out;
}

SamplingTransform random_sampling(std::mt19937_64& rng, int v) {
  SamplingTransform sp;
  sp.temperature = pick(rng, {0.0f, 0.5f, 1.0f, 1.0f, 2.0f});
  sp.top_k = pick(rng, {0, 0, 1, 2, 5, v});
  sp.top_p = pick(rng, {1.0f, 1.0f, 0.9f, 0.5f, 0.05f});
  return sp;
}

Problem random_problem(std::mt19937_64& rng, int b, int k, int v) {
  Problem pr;
  pr.b = b;
  pr.k = k;
  pr.v = v;
  const float scale = pick(rng, {0.3f, 2.0f, 6.0f});
  const bool ties = pick(rng, {false, true});
  pr.target = random_logits(rng, static_cast<size_t>(b) * (k + 1) * v, v, scale, ties);
  if (pick(rng, {true, true, false})) {
    pr.draft = pr.target;  // related draft: the target rows plus noise
    pr.draft.resize(static_cast<size_t>(b) * k * v);
    std::normal_distribution<float> noise(0.0f, 1.0f);
    for (size_t r = 0; r < static_cast<size_t>(b) * k; ++r)
      for (int t = 0; t < v; ++t) {
        const float x = pr.target[(r / k * (k + 1) + r % k) * v + t];
        pr.draft[r * v + t] = std::isinf(x) ? x : x + noise(rng);
      }
  }
  if (pick(rng, {true, false})) {
    pr.fanout.resize(static_cast<size_t>(b) * k);
    for (int32_t& f : pr.fanout) f = pick(rng, {0, 1, 2, 4});
  }
  pr.params.resize(b);
  std::uniform_int_distribution<int> len(0, k);
  for (int s = 0; s < b; ++s) {
    SeqVerifyParams& p = pr.params[s];
    p.target = random_sampling(rng, v);
    p.draft = random_sampling(rng, v);
    p.saguaro_c = pick(rng, {1.0f, 0.5f, 0.1f, 0.0f});
    p.draft_len = pick(rng, {k, k, -1}) < 0 ? len(rng) : k;
    p.seed = rng();
    p.position = static_cast<int64_t>(rng() % 100000);
    p.onehot = pr.draft.empty() || pick(rng, {0, 0, 0, 1});
  }
  // Proposals: drawn from q' by the draft sampler where there are draft logits, else arbitrary tokens.
  pr.tokens.resize(static_cast<size_t>(b) * k);
  std::uniform_int_distribution<int64_t> tok(0, v - 1);
  for (int64_t& t : pr.tokens) t = tok(rng);
  if (!pr.draft.empty() && k > 0) {
    std::vector<DraftRowParams> dp(static_cast<size_t>(b) * k);
    for (size_t r = 0; r < dp.size(); ++r) {
      const SeqVerifyParams& p = pr.params[r / k];
      dp[r].sampling = p.draft;
      dp[r].saguaro = SaguaroParams{p.saguaro_c, pr.fanout.empty() ? 0 : pr.fanout[r]};
      dp[r].seed = p.seed;
      dp[r].position = p.position + static_cast<int64_t>(r % k);
    }
    sample_draft_cpu(DraftBatch{b * k, v, pr.draft.data(), dp.data()}, DraftResult{pr.tokens.data(), nullptr}, 1);
    // Verification reads each proposal's row through a pointer: lay the rows out of order.
    std::vector<size_t> perm(dp.size());
    for (size_t r = 0; r < perm.size(); ++r) perm[r] = r;
    std::shuffle(perm.begin(), perm.end(), rng);
    pr.scattered.resize(pr.draft.size());
    pr.rows.resize(perm.size());
    for (size_t r = 0; r < perm.size(); ++r) {
      std::copy_n(&pr.draft[r * v], v, &pr.scattered[perm[r] * v]);
      pr.rows[r] = &pr.scattered[perm[r] * v];
    }
  }
  return pr;
}

VerifyBatch batch_of(const Problem& pr) {
  VerifyBatch vb;
  vb.batch = pr.b;
  vb.k = pr.k;
  vb.vocab = pr.v;
  vb.target_logits = pr.target.data();
  vb.draft_tokens = pr.tokens.data();
  vb.draft_rows = pr.rows.empty() ? nullptr : pr.rows.data();
  vb.saguaro_fanout = pr.fanout.empty() ? nullptr : pr.fanout.data();
  vb.params = pr.params.data();
  return vb;
}

bool same_stats(const RowStats& a, const RowStats& b) { return std::memcmp(&a, &b, sizeof(RowStats)) == 0; }

void check_problem(const Problem& pr) {
  VerifyBatch vb = batch_of(pr);
  // Rows verification never reads may be null (verifier.h): past draft_len, and every row of a sequence
  // whose q is one-hot or whose target is greedy. A kernel that reads one crashes here.
  std::vector<const float*> rows = pr.rows;
  for (size_t r = 0; r < rows.size(); ++r) {
    const SeqVerifyParams& p = pr.params[r / pr.k];
    if (static_cast<int>(r % pr.k) >= p.draft_len || p.onehot || p.target.temperature == 0.0f) rows[r] = nullptr;
  }
  if (!rows.empty()) vb.draft_rows = rows.data();
  const int b = pr.b, k = pr.k, v = pr.v;
  std::vector<RowStats> ts(static_cast<size_t>(b) * (k + 1)), ds(static_cast<size_t>(std::max(1, b * k)));
  std::vector<int64_t> acc(b, -7), next(b, -7);
  emu::launch<BlockShared>(static_cast<int64_t>(b) * (2 * k + 1), [&](int64_t blk, BlockShared& sh) {
    cuda_detail::verify_row_stats_block(blk, vb.target_logits, vb.draft_rows, b, k, v, vb.params,
                                        vb.saguaro_fanout, ts.data(), ds.data(), sh);
  });
  emu::launch<BlockShared>(b, [&](int64_t blk, BlockShared& sh) {
    cuda_detail::verify_seq_block(static_cast<int>(blk), vb.target_logits, vb.draft_tokens, vb.draft_rows, k, v,
                                  vb.params, ts.data(), ds.data(), acc.data(), next.data(), sh);
  });
  RowScratch sc;
  for (int s = 0; s < b; ++s) {
    const SeqVerifyParams& p = pr.params[s];
    for (int i = 0; i <= p.draft_len; ++i) {
      const size_t r = static_cast<size_t>(s) * (k + 1) + i;
      SSD_CHECK(same_stats(ts[r], compute_row_stats(&pr.target[r * v], v, p.target, SaguaroParams{}, sc, nullptr)));
    }
    const bool draft_rows = !pr.draft.empty() && !p.onehot && p.target.temperature != 0.0f;
    for (int i = 0; draft_rows && i < p.draft_len; ++i) {
      const size_t r = static_cast<size_t>(s) * k + i;
      const SaguaroParams sg{p.saguaro_c, pr.fanout.empty() ? 0 : pr.fanout[r]};
      SSD_CHECK(same_stats(ds[r], compute_row_stats(&pr.draft[r * v], v, p.draft, sg, sc, nullptr)));
    }
  }
  std::vector<int64_t> cacc(b), cnext(b);
  verify_cpu(vb, VerifyResult{cacc.data(), cnext.data()}, 1);
  for (int s = 0; s < b; ++s) {
    SSD_CHECK_EQ(acc[s], cacc[s]);
    SSD_CHECK_EQ(next[s], cnext[s]);
  }
}

}  // namespace

SSD_TEST(emulated_verify_kernels_match_the_cpu_reference) {
  std::mt19937_64 rng(12345);
  for (int c = 0; c < kCases; ++c) {
    const int v = pick(rng, {1, 2, 5, 17, 255, 256, 300, 700, 2100});
    const int k = pick(rng, {0, 1, 3});
    const int b = pick(rng, {1, 2, 3});
    check_problem(random_problem(rng, b, k, v));
  }
}

SSD_TEST(emulated_kernels_walk_long_lanes) {
  // V > 256 * 1024: each lane holds more than one walk chunk.
  std::mt19937_64 rng(7);
  Problem pr = random_problem(rng, 1, 1, 300000);
  pr.params[0].target = SamplingTransform{1.0f, 0, 1.0f};
  pr.params[0].draft = SamplingTransform{1.0f, 0, 1.0f};
  pr.params[0].draft_len = 1;
  check_problem(pr);
}

SSD_TEST(emulated_kernels_large_top_k_and_top_p_tails) {
  // top-k above the CPU's heap limit (nth_element there, radix select here), and a top-p cut in the tail.
  std::mt19937_64 rng(11);
  Problem pr = random_problem(rng, 2, 1, 70000);
  pr.params[0].target = SamplingTransform{1.0f, 3000, 0.97f};
  pr.params[1].target = SamplingTransform{1.0f, 0, 0.9999999f};
  for (int b = 0; b < 2; ++b) pr.params[b].draft_len = 1;
  for (int t = 0; t < 70000; ++t) pr.target[static_cast<size_t>(2 * 70000) + t] = t % 1000 == 0 ? 18.0f : 0.0f;
  check_problem(pr);
}

SSD_TEST(emulated_draft_kernel_matches_the_cpu_reference) {
  std::mt19937_64 rng(99);
  for (int c = 0; c < kCases / 4; ++c) {
    const int v = pick(rng, {3, 40, 700});
    const int n = 5;
    std::vector<float> logits = random_logits(rng, static_cast<size_t>(n) * v, v, pick(rng, {0.5f, 3.0f}), c % 2 == 1);
    std::vector<DraftRowParams> dp(n);
    for (DraftRowParams& p : dp) {
      p.sampling = random_sampling(rng, v);
      p.saguaro = SaguaroParams{pick(rng, {1.0f, 0.5f, 0.0f}), pick(rng, {0, 1, 3})};
      p.seed = rng();
      p.position = static_cast<int64_t>(rng() % 1000);
    }
    std::vector<int64_t> tok(n, -1), ctok(n);
    std::vector<float> probs(static_cast<size_t>(n) * v), cprobs(probs.size());
    emu::launch<BlockShared>(n, [&](int64_t blk, BlockShared& sh) {
      cuda_detail::sample_draft_block(blk, logits.data(), v, dp.data(), tok.data(), probs.data(), sh);
    });
    sample_draft_cpu(DraftBatch{n, v, logits.data(), dp.data()}, DraftResult{ctok.data(), cprobs.data()}, 1);
    for (int r = 0; r < n; ++r) SSD_CHECK_EQ(tok[r], ctok[r]);
    SSD_CHECK(std::memcmp(probs.data(), cprobs.data(), probs.size() * sizeof(float)) == 0);
  }
}

namespace {

// The fork kernel as launched (cuda_logits_ops.cu): one block per request, rows and outputs through the
// rows / offsets arrays, counts clamped to V on the host as CudaLogitsOps does.
std::vector<std::vector<int32_t>> emulated_top_tokens(const Logits& l, const std::vector<TopRequest>& reqs) {
  const size_t n = reqs.size();
  std::vector<int64_t> rows(n), offsets(n);
  std::vector<int32_t> counts(n), excludes(n), found(n, -7);
  int64_t total = 0;
  for (size_t q = 0; q < n; ++q) {
    rows[q] = reqs[q].row, excludes[q] = reqs[q].exclude;
    counts[q] = static_cast<int32_t>(std::min<int64_t>(std::max(reqs[q].count, 0), l.vocab));
    offsets[q] = total;
    total += counts[q];
  }
  std::vector<int32_t> out(static_cast<size_t>(total) + 1, -7);
  emu::launch<BlockShared>(static_cast<int64_t>(n), [&](int64_t q, BlockShared& sh) {
    cuda_detail::top_tokens_request_block(q, l.data, static_cast<int32_t>(l.vocab), rows.data(), counts.data(),
                                          excludes.data(), offsets.data(), out.data(), found.data(), sh);
  });
  std::vector<std::vector<int32_t>> got(n);
  for (size_t q = 0; q < n; ++q) {
    SSD_CHECK(found[q] >= 0 && found[q] <= counts[q]);
    got[q].assign(out.begin() + offsets[q], out.begin() + offsets[q] + std::max(found[q], 0));
  }
  SSD_CHECK_EQ(out[static_cast<size_t>(total)], -7);  // nothing written past the last request's slice
  return got;
}

}  // namespace

SSD_TEST(emulated_fork_top_tokens_match_the_cpu_reference) {
  std::mt19937_64 rng(5);
  for (int c = 0; c < kCases / 2; ++c) {
    const int v = pick(rng, {1, 3, 40, 300, 700});
    const int n = 6;
    std::vector<float> logits = random_logits(rng, static_cast<size_t>(n) * v, v, 2.0f, c % 2 == 1);
    if (c % 3 == 2) std::fill_n(&logits[static_cast<size_t>(n - 1) * v], v, -INFINITY);  // a row of ties at -inf
    Logits l;
    l.data = logits.data(), l.rows = n, l.vocab = v;
    std::vector<TopRequest> reqs;
    std::uniform_int_distribution<int64_t> row(0, n - 1);
    for (int r = 0; r < 2 * n; ++r)  // rows in any order, some twice
      reqs.push_back(TopRequest{row(rng), pick(rng, {0, 1, 3, 8, v, v + 4, -2}), pick(rng, {-1, 0, 2, v - 1, v + 3})});
    std::vector<std::vector<int32_t>> want;
    CpuLogitsOps().top_tokens(l, reqs, &want);
    SSD_CHECK(emulated_top_tokens(l, reqs) == want);
  }
}

SSD_TEST(emulated_finite_check_matches_the_cpu_reference) {
  const float inf = INFINITY;
  const std::vector<std::vector<float>> rows = {
      {0.5f, -1.0f, 2.0f}, {-inf, -inf, -inf}, {1.0f, NAN, inf}, {-inf, inf, NAN}, {-inf, 0.0f, -inf}};
  for (const std::vector<float>& row : rows) {
    int64_t column = -9;
    float value = 0.0f;
    emu::launch<BlockShared>(1, [&](int64_t, BlockShared& sh) {
      cuda_detail::find_bad_block(row.data(), static_cast<int32_t>(row.size()), &column, &value, sh);
    });
    const int64_t want = bad_logit_column(row.data(), static_cast<int64_t>(row.size()));
    SSD_CHECK_EQ(column, want);
    if (want >= 0 && want < static_cast<int64_t>(row.size()))
      SSD_CHECK(std::memcmp(&value, &row[want], sizeof(float)) == 0);
  }
  std::vector<float> wide(1000, -inf);  // past one lane: the first bad column wins across threads
  wide[777] = NAN, wide[513] = inf, wide[900] = 1.0f;
  int64_t column = -9;
  float value = 0.0f;
  emu::launch<BlockShared>(1, [&](int64_t, BlockShared& sh) {
    cuda_detail::find_bad_block(wide.data(), 1000, &column, &value, sh);
  });
  SSD_CHECK_EQ(column, 513);
  SSD_CHECK(value == inf);
}

SSD_TEST(emulated_finite_check_kernel_matches_cpu_logits_ops) {
  // The kernel as launched: one block per requested row, through the rows array (any order, repeats).
  std::mt19937_64 rng(17);
  const int v = 600, n = 7;
  std::vector<float> logits = random_logits(rng, static_cast<size_t>(n) * v, v, 2.0f, false);
  std::fill_n(&logits[static_cast<size_t>(1) * v], v, -INFINITY);  // no finite entry
  logits[static_cast<size_t>(2) * v + 599] = NAN;
  logits[static_cast<size_t>(3) * v + 300] = INFINITY;
  logits[static_cast<size_t>(3) * v + 301] = NAN;
  logits[static_cast<size_t>(5) * v + 0] = -INFINITY;  // -inf alone is usable
  Logits l;
  l.data = logits.data(), l.rows = n, l.vocab = v;
  const std::vector<int64_t> rows = {3, 0, 6, 1, 2, 5, 3, 4};
  std::vector<BadLogit> want;
  CpuLogitsOps().find_bad(l, rows, &want);
  std::vector<int64_t> columns(rows.size(), -9);
  std::vector<float> values(rows.size(), -9.0f);
  emu::launch<BlockShared>(static_cast<int64_t>(rows.size()), [&](int64_t i, BlockShared& sh) {
    cuda_detail::find_bad_request_block(i, l.data, v, rows.data(), columns.data(), values.data(), sh);
  });
  for (size_t i = 0; i < rows.size(); ++i) {
    SSD_CHECK_EQ(columns[i], want[i].column);
    if (want[i].column >= 0 && want[i].column < v)
      SSD_CHECK(std::memcmp(&values[i], &want[i].value, sizeof(float)) == 0);
  }
  SSD_CHECK_EQ(want[0].column, 300);
  SSD_CHECK_EQ(want[3].column, v);
  SSD_CHECK_EQ(want[5].column, -1);
}

SSD_TEST(emulated_mask_kernel_matches_cpu_logits_ops) {
  // The kernel as launched (cuda_logits_ops.cu): one block per masked row, through the rows array, the
  // masks of row i at masks + i * words; vocabularies below, at and past a lane, and past a word.
  std::mt19937_64 rng(23);
  for (int v : {1, 31, 32, 33, 256, 700}) {
    const int n = 5, words = mask_words(v);
    std::vector<float> logits = random_logits(rng, static_cast<size_t>(n) * v, v, 2.0f, v % 2 == 1);
    const std::vector<int64_t> rows = {3, 0, 4};  // any order; rows 1 and 2 stay as they are
    std::vector<uint32_t> masks(rows.size() * words);
    for (uint32_t& w : masks) w = static_cast<uint32_t>(rng());
    masks[0] = 0u;  // a word with nothing allowed
    std::vector<float> want = logits, got = logits;
    Logits lw, lg;
    lw.data = want.data(), lw.rows = lg.rows = n, lw.vocab = lg.vocab = v;
    lg.data = got.data();
    CpuLogitsOps().apply_masks(lw, rows, masks.data(), words);
    emu::launch<BlockShared>(static_cast<int64_t>(rows.size()), [&](int64_t i, BlockShared&) {
      cuda_detail::apply_mask_request_block(i, got.data(), v, rows.data(), masks.data(), words);
    });
    SSD_CHECK(std::memcmp(got.data(), want.data(), sizeof(float) * got.size()) == 0);
    SSD_CHECK(want != logits || v == 1);  // something was masked
  }
}

int main() {
#if defined(__SANITIZE_THREAD__)
  // The emulation switches stacks with ucontext, which ThreadSanitizer cannot follow; it tests no threads.
  std::printf("skipped under ThreadSanitizer\n");
  return 0;
#else
  return ssd_test::run_all();
#endif
}
