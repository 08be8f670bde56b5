// test_constrained_decoding.cpp: structured output in the runtime (ssdcore/token_masker.h) with a
// synthetic, path-dependent TokenMasker: token t is allowed after context c (generated + path) iff
// (7 t + sum(c) + len(c)) % 3 != 0. Checks, in ar, sd and ssd (every backup): every committed token was
// allowed after the tokens before it; greedy output is the same in every mode (the masked target's
// greedy output); sampled output stays inside the grammar; both sides ask the masker (its draft side
// really constrains the draft: proposals are allowed tokens); a masker that throws fails the constrained
// requests only; a target row with no allowed token fails its request with a clear error, a draft row
// with none lets the draft propose anything; requests the engine cannot serve are rejected up front.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.h"
#include "hash_mix.h"
#include "ssdcore/ssdcore.h"

namespace {

constexpr std::int64_t kVocab = 40;

using ssd_test::mix;

// Logits from the last two context tokens (read back through the attention the batch describes); the
// draft adds noise so that only part of its proposals pass.
class TestModel : public ssdcore::ModelRunner {
 public:
  // support: tokens >= support get -inf (a draft with a reduced vocabulary)
  TestModel(int lanes, int slots, float noise, std::int64_t support = kVocab)
      : slots_(slots), noise_(noise), support_(support), kv_(lanes * slots, -1) {}
  std::int64_t vocab_size() const override { return kVocab; }
  ssdcore::Logits forward(const ssdcore::ForwardBatch& b) override {
    if (b.rows == 0 || b.out_rows == 0) throw std::logic_error("an empty forward");  // as the CPU model
    for (std::size_t r = 0; r < b.rows; ++r) kv_[b.lanes[r] * slots_ + b.slots[r]] = b.tokens[r];
    ssdcore::Logits out = ssdcore::Logits::allocate(b.out_rows, kVocab);
    for (std::size_t r = 0; r < b.rows; ++r) {
      if (b.out_index[r] < 0) continue;
      std::vector<std::int32_t> ctx;
      b.for_each_attended_slot(r, [&](std::int32_t s) { ctx.push_back(kv_[b.lanes[r] * slots_ + s]); });
      const std::uint32_t p1 = static_cast<std::uint32_t>(ctx.back());
      const std::uint32_t p2 = ctx.size() > 1 ? static_cast<std::uint32_t>(ctx[ctx.size() - 2]) : 999u;
      float* row = out.mutable_data() + b.out_index[r] * kVocab;
      for (std::int64_t v = 0; v < kVocab; ++v) {
        const std::uint32_t t = static_cast<std::uint32_t>(v);
        row[v] = 4.0f * (mix(p2 * 131u + p1 * 7u + t) >> 8) / 16777216.0f +
                 noise_ * (mix(p2 * 17u + p1 * 3u + t + 99u) >> 8) / 16777216.0f;
        if (v >= support_) row[v] = -INFINITY;
      }
    }
    return out;
  }

 private:
  const int slots_;
  const float noise_;
  const std::int64_t support_;
  std::vector<std::int32_t> kv_;
};

bool rule_allows(std::int64_t t, std::int64_t sum, std::int64_t len) { return (t * 7 + sum + len) % 3 != 0; }
// The tight grammar: exactly one token allowed after each context.
bool tight_allows(std::int64_t t, std::int64_t sum, std::int64_t len) { return t == (sum + 3 * len) % kVocab; }

// Whether every generated token was allowed after the tokens generated before it.
bool follows_rule(const std::vector<std::int32_t>& out) {
  std::int64_t sum = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (!rule_allows(out[i], sum, static_cast<std::int64_t>(i))) return false;
    sum += out[i];
  }
  return true;
}

// The synthetic grammar; counts its calls per side and, optionally, misbehaves.
class RuleMasker : public ssdcore::TokenMasker {
 public:
  std::atomic<int> rows[2] = {{0}, {0}};
  std::atomic<bool> throw_on_target{false};
  std::atomic<bool> throw_on_draft{false};
  std::atomic<bool> draft_allows_nothing{false};
  std::atomic<int> none_at_length{-1};  // target rows whose context has this length allow nothing
  std::atomic<int> bad_paths{0};        // target rows whose path (the draft's proposals) left the grammar
  std::atomic<int> draft_bad_paths{0};  // draft rows whose path left the grammar
  std::atomic<bool> tight{false};       // use tight_allows instead of rule_allows
  std::atomic<bool> high_at_odd{false};  // after an odd number of tokens only tokens >= kVocab / 2

  void fill_masks(int side, const ssdcore::MaskRow* r, std::int32_t n, std::uint32_t* masks,
                  std::int32_t words) override {
    if (side != 0 && side != 1) throw std::logic_error("bad side");
    rows[side] += n;
    if (side == 0 && throw_on_target) throw std::runtime_error("grammar exploded");
    if (side == 1 && throw_on_draft) throw std::runtime_error("draft grammar exploded");
    for (std::int32_t i = 0; i < n; ++i) {
      if (r[i].constraint != 5) throw std::logic_error("unexpected constraint");
      std::int64_t sum = 0;
      for (std::int32_t j = 0; j < r[i].n_generated; ++j) sum += r[i].generated[j];
      const auto allows = [this](std::int64_t t, std::int64_t s, std::int64_t l) {
        if (high_at_odd && l % 2 == 1 && t < kVocab / 2) return false;
        return tight ? tight_allows(t, s, l) : rule_allows(t, s, l);
      };
      bool path_ok = true;
      for (std::int32_t j = 0; j < r[i].n_path; ++j) {
        path_ok &= allows(r[i].path[j], sum, r[i].n_generated + j);
        sum += r[i].path[j];
      }
      if (!path_ok) (side == 0 ? bad_paths : draft_bad_paths) += 1;
      const std::int64_t len = r[i].n_generated + r[i].n_path;
      if (side == 1 && draft_allows_nothing) continue;
      if (side == 0 && len == none_at_length) continue;
      for (std::int64_t t = 0; t < kVocab; ++t)
        if (allows(t, sum, len)) masks[i * words + t / 32] |= 1u << (t % 32);
    }
  }
};

ssdcore::EngineConfig config_for(const std::string& mode, const std::string& backup) {
  ssdcore::EngineConfig c;
  c.mode = mode;
  c.backup = backup;
  c.K = 3;
  c.fan_out_budget = 4;
  c.max_batch = 4;
  c.max_context = 128;
  return c;
}

struct Rig {
  Rig(const ssdcore::EngineConfig& c, std::shared_ptr<RuleMasker> m, std::int64_t draft_support = kVocab)
      : masker(std::move(m)),
        target(c.max_batch, c.target_slots(), 0.0f),
        draft(c.max_batch, c.draft_slots(), 1.5f, draft_support),
        engine(c, &target, c.mode == "ar" ? nullptr : &draft, {}, masker) {}
  std::shared_ptr<RuleMasker> masker;
  TestModel target;
  TestModel draft;
  ssdcore::Engine engine;
};

ssdcore::SamplingParams params(double temperature, std::int64_t constraint, std::uint64_t seed = 1) {
  ssdcore::SamplingParams p;
  p.temperature = temperature;
  p.max_tokens = 24;
  p.constraint = constraint;
  p.seed = seed;
  return p;
}

const std::vector<std::vector<std::int32_t>> kPrompts = {{1, 2, 3}, {7}, {30, 31, 9, 9, 12}, {5, 5}};

struct ModeCase {
  const char* mode;
  const char* backup;
};
const std::vector<ModeCase> kModes = {{"ar", "auto"}, {"sd", "auto"},   {"ssd", "jit"},
                                      {"ssd", "ngram"}, {"ssd", "none"}, {"ssd", "auto"}};

// Runs every prompt at once (one batch) and returns the outputs in prompt order.
std::vector<std::vector<std::int32_t>> run_batch(Rig& rig, const std::vector<ssdcore::SamplingParams>& ps) {
  std::vector<ssdcore::RequestId> ids;
  for (std::size_t i = 0; i < kPrompts.size(); ++i) ids.push_back(rig.engine.submit(kPrompts[i], ps[i]));
  std::vector<std::vector<std::int32_t>> out;
  for (ssdcore::RequestId id : ids) {
    ssdcore::Result r = rig.engine.wait(id);
    SSD_CHECK(r.ok());
    out.push_back(r.tokens);
  }
  return out;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

SSD_TEST(greedy_constrained_output_is_the_same_in_every_mode_and_follows_the_grammar) {
  std::vector<std::vector<std::int32_t>> want;
  std::vector<std::vector<std::int32_t>> unconstrained_ar;
  for (const ModeCase& m : kModes) {
    Rig rig(config_for(m.mode, m.backup), std::make_shared<RuleMasker>());
    const std::vector<ssdcore::SamplingParams> ps(kPrompts.size(), params(0.0, 5));
    std::vector<std::vector<std::int32_t>> got = run_batch(rig, ps);
    for (const auto& out : got) {
      SSD_CHECK_EQ(out.size(), static_cast<std::size_t>(24));
      SSD_CHECK(follows_rule(out));
    }
    if (want.empty()) want = got;
    SSD_CHECK(got == want);
    SSD_CHECK(rig.masker->rows[0] > 0);
    const ssdcore::StatsSnapshot s = rig.engine.stats();
    SSD_CHECK(s.phase_count[static_cast<int>(ssdcore::Phase::kTargetMask)] > 0);
    const bool drafts = std::string(m.mode) != "ar" && std::string(m.backup) != "ngram" &&
                        std::string(m.backup) != "none";
    if (drafts) {  // the draft proposed from its masked q: every drafted proposal the target saw was allowed
      SSD_CHECK(rig.masker->rows[1] > 0);
      if (std::string(m.backup) != "auto") SSD_CHECK_EQ(rig.masker->bad_paths.load(), 0);  // auto: some ngram
      SSD_CHECK(s.phase_count[static_cast<int>(ssdcore::Phase::kDraftMask)] > 0);
    }
    if (std::string(m.mode) == "ar") {
      const std::vector<ssdcore::SamplingParams> free(kPrompts.size(), params(0.0, 0));
      unconstrained_ar = run_batch(rig, free);
    }
  }
  bool any_differs = false;  // the grammar really changed the output
  for (std::size_t i = 0; i < want.size(); ++i) any_differs |= want[i] != unconstrained_ar[i];
  SSD_CHECK(any_differs);
}

SSD_TEST(sampled_constrained_output_follows_the_grammar_and_unconstrained_neighbours_are_unaffected) {
  for (const ModeCase& m : kModes) {
    std::vector<std::vector<std::int32_t>> alone;
    {
      Rig rig(config_for(m.mode, m.backup), std::make_shared<RuleMasker>());
      std::vector<ssdcore::SamplingParams> ps;
      for (std::size_t i = 0; i < kPrompts.size(); ++i) ps.push_back(params(1.0, 0, 100 + i));
      alone = run_batch(rig, ps);
    }
    Rig rig(config_for(m.mode, m.backup), std::make_shared<RuleMasker>());
    std::vector<ssdcore::SamplingParams> ps;  // prompts 0 and 2 constrained, 1 and 3 not
    for (std::size_t i = 0; i < kPrompts.size(); ++i) ps.push_back(params(1.0, i % 2 == 0 ? 5 : 0, 100 + i));
    std::vector<std::vector<std::int32_t>> got = run_batch(rig, ps);
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (i % 2 == 0) {
        SSD_CHECK(follows_rule(got[i]));
      } else if (std::string(m.backup) != "auto") {  // auto picks backups by measured times
        SSD_CHECK(got[i] == alone[i]);  // seeded: the same tokens whatever else is in the batch
      }
    }
  }
}

SSD_TEST(a_draft_mask_that_allows_nothing_leaves_the_draft_free_and_the_output_exact) {
  Rig ref(config_for("ar", "auto"), std::make_shared<RuleMasker>());
  const std::vector<ssdcore::SamplingParams> ps(kPrompts.size(), params(0.0, 5));
  const auto want = run_batch(ref, ps);
  for (const char* backup : {"jit", "auto"}) {
    auto masker = std::make_shared<RuleMasker>();
    masker->draft_allows_nothing = true;
    Rig rig(config_for("ssd", backup), masker);
    SSD_CHECK(run_batch(rig, ps) == want);
    SSD_CHECK(masker->bad_paths > 0);  // an unmasked draft proposes disallowed tokens (the control)
  }
}

SSD_TEST(a_draft_that_cannot_produce_any_allowed_token_stops_drafting_there_and_the_output_stays_exact) {
  // The draft's logits are -inf for tokens >= kVocab / 2 (a reduced vocabulary); after an odd number of
  // tokens the grammar allows only such tokens, so masking leaves those draft rows with no finite entry.
  const auto high_masker = [] {
    auto m = std::make_shared<RuleMasker>();
    m->high_at_odd = true;
    return m;
  };
  Rig ref(config_for("ar", "auto"), high_masker());
  for (double temperature : {0.0, 1.0}) {
    const std::vector<ssdcore::SamplingParams> ps(kPrompts.size(), params(temperature, 5));
    const auto want = run_batch(ref, ps);
    for (const ModeCase& m : kModes) {
      if (std::string(m.mode) == "ar") continue;
      Rig rig(config_for(m.mode, m.backup), high_masker(), kVocab / 2);
      const auto got = run_batch(rig, ps);  // before the fix: "draft logits are not finite ... (no finite entry)"
      if (temperature == 0.0) SSD_CHECK(got == want);
      for (const auto& out : got) {
        SSD_CHECK(follows_rule(out));
        for (std::size_t i = 1; i < out.size(); i += 2) SSD_CHECK(out[i] >= kVocab / 2);
      }
    }
  }
}

SSD_TEST(a_tight_grammar_forces_the_output_and_the_fork_wastes_no_branch) {
  // One allowed token per context: the output is the grammar's, whatever the models; the fork of g_j
  // (j < n) excludes s_{j+1}, the only allowed token, so every other candidate is forbidden and must
  // not become a branch (the draft would decode paths the target can never take).
  std::vector<std::int32_t> forced;
  std::int64_t sum = 0;
  for (int i = 0; i < 24; ++i) forced.push_back(static_cast<std::int32_t>((sum + 3 * i) % kVocab)), sum += forced.back();
  for (const ModeCase& m : kModes) {
    auto masker = std::make_shared<RuleMasker>();
    masker->tight = true;
    Rig rig(config_for(m.mode, m.backup), masker);
    ssdcore::Result r = rig.engine.generate({1, 2, 3}, params(1.0, 5));
    SSD_CHECK(r.ok());
    SSD_CHECK(r.tokens == forced);
    if (std::string(m.backup) == "auto" || std::string(m.backup) == "ngram") continue;  // ngram: any tokens
    SSD_CHECK_EQ(masker->bad_paths.load(), 0);
    SSD_CHECK_EQ(masker->draft_bad_paths.load(), 0);
  }
}

SSD_TEST(a_target_row_with_no_allowed_token_fails_its_request_clearly) {
  for (const ModeCase& m : kModes) {
    auto masker = std::make_shared<RuleMasker>();
    masker->none_at_length = 5;  // after 5 generated tokens nothing is allowed
    Rig rig(config_for(m.mode, m.backup), masker);
    const ssdcore::RequestId bad = rig.engine.submit({1, 2, 3}, params(0.0, 5));
    const ssdcore::RequestId fine = rig.engine.submit({1, 2, 3}, params(0.0, 0));
    ssdcore::Result r = rig.engine.wait(bad);
    SSD_CHECK(!r.ok());
    SSD_CHECK(r.error_kind == ssdcore::ErrorKind::kModelRunner);
    SSD_CHECK(r.error.find("the constraint allows no token at position 8") != std::string::npos);
    SSD_CHECK(r.tokens.size() <= static_cast<std::size_t>(5));  // the failing round commits nothing
    SSD_CHECK(follows_rule(r.tokens));
    SSD_CHECK(rig.engine.wait(fine).ok());
  }
}

SSD_TEST(a_masker_that_throws_fails_the_constrained_requests_and_the_engine_goes_on) {
  for (const ModeCase& m : kModes) {
    auto masker = std::make_shared<RuleMasker>();
    masker->throw_on_target = true;
    Rig rig(config_for(m.mode, m.backup), masker);
    const ssdcore::RequestId bad = rig.engine.submit({1, 2, 3}, params(0.0, 5));
    const ssdcore::RequestId fine = rig.engine.submit({4, 2}, params(0.0, 0));
    ssdcore::Result r = rig.engine.wait(bad);
    SSD_CHECK(!r.ok());
    SSD_CHECK(r.error_kind == ssdcore::ErrorKind::kModelRunner);
    SSD_CHECK(r.error.find("target token masker failed: grammar exploded") != std::string::npos);
    SSD_CHECK(rig.engine.wait(fine).ok());
    masker->throw_on_target = false;
    SSD_CHECK(rig.engine.generate({1, 2, 3}, params(0.0, 5)).ok());
  }
}

SSD_TEST(a_masker_that_throws_on_the_draft_side_leaves_the_draft_unmasked_and_fails_nothing) {
  const std::vector<ssdcore::SamplingParams> ps = {params(0.0, 5), params(0.0, 0), params(0.0, 5), params(0.0, 0)};
  Rig healthy(config_for("ar", "auto"), std::make_shared<RuleMasker>());
  const std::vector<std::vector<std::int32_t>> want = run_batch(healthy, ps);
  for (const ModeCase& m : kModes) {
    if (std::string(m.mode) == "ar") continue;  // no draft
    auto masker = std::make_shared<RuleMasker>();
    masker->throw_on_draft = true;
    Rig rig(config_for(m.mode, m.backup), masker);
    const std::vector<std::vector<std::int32_t>> got = run_batch(rig, ps);  // every request succeeds
    for (std::size_t i = 0; i < got.size(); ++i) {
      SSD_CHECK(got[i] == want[i]);  // greedy: exactly the target's, constrained by the target's masks
      if (ps[i].constraint > 0) SSD_CHECK(follows_rule(got[i]));
    }
    const ssdcore::StatsSnapshot s = rig.engine.stats();
    SSD_CHECK(s.draft_mask_failures > 0);
    SSD_CHECK(masker->rows[1] > 0);
  }
}

SSD_TEST(requests_the_engine_cannot_constrain_are_rejected) {
  Rig rig(config_for("ssd", "auto"), nullptr);
  std::string e = error_of([&] { rig.engine.submit({1, 2}, params(0.0, 5)); });
  SSD_CHECK(e.find("SamplingParams.constraint = 5 needs an engine built with a TokenMasker") != std::string::npos);
  Rig with(config_for("ssd", "auto"), std::make_shared<RuleMasker>());
  ssdcore::SamplingParams p = params(0.0, 5);
  p.ignore_eos = true;
  e = error_of([&] { with.engine.submit({1, 2}, p); });
  SSD_CHECK(e.find("SamplingParams.ignore_eos") != std::string::npos);
  e = error_of([&] { with.engine.submit({1, 2}, params(0.0, -1)); });
  SSD_CHECK(e.find("SamplingParams.constraint = -1 is invalid") != std::string::npos);
  SSD_CHECK(with.engine.generate({1, 2}, params(0.0, 5)).ok());  // still usable
}

int main() { return ssd_test::run_all(); }
