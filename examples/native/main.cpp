// main.cpp: the native example. Runs the same greedy requests through ssdcore::Engine in the three
// modes (ar: target only, sd: speculative decoding, ssd: speculative speculative decoding) over the
// HashLM toy models, prints the tokens and the engine's statistics, and exits with status 1 unless
// sd and ssd produced exactly the tokens ar produced (as they must at temperature 0).
//
// Usage: ssd_native_example [--max-tokens N] [--K N] [--fan-out F] [--target-us U] [--draft-us U]
//                           [--noise X] [--quiet]
// It shows the three ways to consume output: a blocking generate() with a streaming callback, and
// async submit() followed by wait() or by poll(); all three run concurrently in the same batches.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <ssdcore/ssdcore.h>

#include "hash_lm.h"

namespace {

struct Options {
  int max_tokens = 48;
  int K = 4;
  int fan_out = 6;
  int target_us = 1500;
  int draft_us = 250;
  double noise = 0.15;  // draft perturbation amplitude (target logits span [0, 8))
  bool quiet = false;
};

constexpr std::int32_t kEos = 0;

const std::vector<std::vector<std::int32_t>> kPrompts = {
    {11, 42, 7, 19, 88}, {3, 3, 3}, {60, 12, 75, 30, 9, 51, 2, 44}, {17}, {90, 91, 92, 93}};

struct RunOutput {
  std::vector<std::vector<std::int32_t>> tokens;  // per prompt
  ssdcore::StatsSnapshot stats;
  double seconds = 0;
  bool ok = true;
};

void print_tokens(const char* label, const std::vector<std::int32_t>& tokens) {
  std::printf("  %-10s", label);
  for (std::int32_t t : tokens) std::printf(" %d", t);
  std::printf("\n");
}

bool check(const ssdcore::Result& r, const std::string& mode) {
  if (r.ok()) return true;
  std::fprintf(stderr, "[%s] request %lld failed: %s\n", mode.c_str(), static_cast<long long>(r.id),
               r.error.c_str());
  return false;
}

ssdcore::EngineConfig make_config(const std::string& mode, const Options& o) {
  ssdcore::EngineConfig cfg;
  cfg.mode = mode;
  cfg.K = o.K;
  cfg.fan_out_budget = o.fan_out;
  cfg.max_batch = 4;
  cfg.max_context = 256;
  return cfg;
}

// Gathers the streamed events of the `polled` requests (id -> prompt index) into out->tokens.
void collect_polled(ssdcore::Engine& engine, const std::map<ssdcore::RequestId, size_t>& polled,
                    const std::string& mode, RunOutput* out) {
  size_t finished = 0;
  ssdcore::Event ev;
  while (finished < polled.size() && engine.poll(&ev, std::chrono::milliseconds(10000))) {
    std::vector<std::int32_t>& dest = out->tokens[polled.at(ev.id)];
    dest.insert(dest.end(), ev.tokens.begin(), ev.tokens.end());
    if (!ev.finished()) continue;
    ++finished;
    if (ev.finish_reason == ssdcore::FinishReason::kError) {
      std::fprintf(stderr, "[%s] request %lld failed: %s\n", mode.c_str(), static_cast<long long>(ev.id),
                   ev.error.c_str());
      out->ok = false;
    }
  }
  out->ok = out->ok && finished == polled.size();
}

// Prompt 0 through generate() (streaming to stdout), the last prompt through submit() + wait(), the
// others through submit() + poll(); all in flight together.
RunOutput run_mode(const std::string& mode, const Options& o) {
  const ssdcore::EngineConfig cfg = make_config(mode, o);
  HashLMSpec target_spec;
  target_spec.forward_us = o.target_us;
  HashLMSpec draft_spec = target_spec;
  draft_spec.noise = static_cast<float>(o.noise);
  draft_spec.forward_us = o.draft_us;
  HashLM target(target_spec, cfg.max_batch, cfg.target_slots());  // runners outlive the engine
  HashLM draft(draft_spec, cfg.max_batch, cfg.draft_slots());
  ssdcore::Engine engine(cfg, &target, mode == "ar" ? nullptr : &draft, {kEos});

  ssdcore::SamplingParams params;
  params.temperature = 0.0;  // greedy: ssd and sd must reproduce ar exactly
  params.max_tokens = o.max_tokens;
  RunOutput out;
  out.tokens.resize(kPrompts.size());
  const auto start = std::chrono::steady_clock::now();
  std::map<ssdcore::RequestId, size_t> polled;
  for (size_t i = 1; i + 1 < kPrompts.size(); ++i) polled[engine.submit(kPrompts[i], params)] = i;
  const ssdcore::RequestId waited = engine.submit(kPrompts.back(), params);

  if (!o.quiet) std::printf("[%s] streaming prompt 0:", mode.c_str());
  auto stream = [&](const std::vector<std::int32_t>& tokens) {  // "|" separates the rounds' tokens
    if (o.quiet) return true;
    std::printf(" |");
    for (std::int32_t t : tokens) std::printf(" %d", t);
    std::fflush(stdout);
    return true;  // keep going
  };
  ssdcore::Result first = engine.generate(kPrompts[0], params, stream);
  if (!o.quiet) std::printf("\n");
  out.ok = check(first, mode);
  out.tokens[0] = first.tokens;
  ssdcore::Result last = engine.wait(waited);
  out.ok = check(last, mode) && out.ok;
  out.tokens.back() = last.tokens;
  collect_polled(engine, polled, mode, &out);

  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.stats = engine.stats();
  engine.close();
  return out;
}

void print_stats(const std::string& mode, const RunOutput& r) {
  std::uint64_t tokens = r.stats.tokens_committed;
  std::printf("[%s] %llu tokens in %.3f s (%.0f tok/s), %llu rounds, %.2f tokens/round, "
              "mean accept length %.2f",
              mode.c_str(), static_cast<unsigned long long>(tokens), r.seconds, tokens / r.seconds,
              static_cast<unsigned long long>(r.stats.rounds), r.stats.tokens_per_round,
              r.stats.mean_accept_length);
  if (mode == "ssd") {
    std::printf(", cache hit rate %.2f, draft hidden %.0f%%", r.stats.hit_rate,
                100.0 * r.stats.draft_hidden_fraction);
  }
  std::printf("\n");
}

bool parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](int* dest) {
      if (i + 1 >= argc) return false;
      *dest = std::atoi(argv[++i]);
      return true;
    };
    bool ok = true;
    if (a == "--max-tokens") ok = value(&o->max_tokens);
    else if (a == "--K") ok = value(&o->K);
    else if (a == "--fan-out") ok = value(&o->fan_out);
    else if (a == "--target-us") ok = value(&o->target_us);
    else if (a == "--draft-us") ok = value(&o->draft_us);
    else if (a == "--noise" && i + 1 < argc) o->noise = std::atof(argv[++i]);
    else if (a == "--quiet") o->quiet = true;
    else ok = false;
    if (!ok) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, &o)) {
    std::fprintf(stderr,
                 "usage: %s [--max-tokens N] [--K N] [--fan-out F] [--target-us U] [--draft-us U] "
                 "[--noise X] [--quiet]\n",
                 argv[0]);
    return 2;
  }
  std::printf("ssdcore %s (headers %s)\n", ssdcore::version(), SSDCORE_VERSION_STRING);
  std::map<std::string, RunOutput> runs;
  try {
    for (const char* mode : {"ar", "sd", "ssd"}) runs[mode] = run_mode(mode, o);
  } catch (const std::exception& e) {  // invalid options end up here (std::invalid_argument)
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  bool same = true;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    const auto& ar = runs["ar"].tokens[i];
    const bool equal = runs["sd"].tokens[i] == ar && runs["ssd"].tokens[i] == ar;
    same = same && equal;
    if (o.quiet && equal) continue;
    std::printf("prompt %zu: %s\n", i, equal ? "ar == sd == ssd" : "MISMATCH");
    for (const char* mode : {"ar", "sd", "ssd"}) {
      if (mode == std::string("ar") || !equal) print_tokens(mode, runs[mode].tokens[i]);
    }
  }
  for (const char* mode : {"ar", "sd", "ssd"}) print_stats(mode, runs[mode]);
  const bool ok = runs["ar"].ok && runs["sd"].ok && runs["ssd"].ok;
  std::printf("%s\n", ok && same ? "OK: sd and ssd outputs equal ar at temperature 0"
                                 : "FAILED: outputs differ or a request failed");
  return ok && same ? 0 : 1;
}
