// engine_config.cpp: ssdcore::EngineConfig's validate() and to_string(), and the enum names; see
// engine_config.h and ssdcore/config.h.
#include "engine_config.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace ssd {
namespace {

constexpr const char* kModeNames[] = {"ssd", "sd", "ar"};
constexpr const char* kFanOutModeNames[] = {"uniform", "list", "geometric"};
constexpr const char* kBackupNames[] = {"auto", "jit", "ngram", "none"};

template <std::size_t N>
std::string quoted_list(const char* const (&names)[N]) {
  std::string out;
  for (std::size_t i = 0; i < N; ++i) {
    if (i) out += ", ";
    out += '"';
    out += names[i];
    out += '"';
  }
  return out;
}

// Index of s in names, or -1.
template <std::size_t N>
int find_name(const char* const (&names)[N], const std::string& s) {
  for (std::size_t i = 0; i < N; ++i) {
    if (s == names[i]) return static_cast<int>(i);
  }
  return -1;
}

template <std::size_t N>
int parse_or_throw(const char* const (&names)[N], const std::string& s, const char* what) {
  const int i = find_name(names, s);
  if (i < 0) {
    throw std::invalid_argument(std::string("unknown ") + what + " \"" + s + "\": allowed " +
                                quoted_list(names));
  }
  return i;
}

std::string list_to_string(const std::vector<int>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(v[i]);
  }
  return out + "]";
}

[[noreturn]] void invalid(const char* field, const std::string& value, const std::string& allowed) {
  throw std::invalid_argument(std::string("EngineConfig.") + field + " = " + value +
                              " is invalid: allowed " + allowed);
}

void check_range(const char* field, long long v, long long lo, long long hi) {
  if (v < lo || v > hi) invalid(field, std::to_string(v), std::to_string(lo) + ".." + std::to_string(hi));
}

void check_min(const char* field, long long v, long long lo) {
  if (v < lo) invalid(field, std::to_string(v), ">= " + std::to_string(lo));
}

template <std::size_t N>
void check_name(const char* field, const std::string& v, const char* const (&names)[N]) {
  if (find_name(names, v) < 0) invalid(field, "\"" + v + "\"", quoted_list(names));
}

// Shortest decimal that reads back as d (so 1.0000001 is not shown as "1").
std::string format_double(double d) {
  char buf[40];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  return buf;
}

// A field's value as to_string() shows it: strings quoted, lists in brackets.
std::string format_value(const std::string& v) { return "'" + v + "'"; }
std::string format_value(const std::vector<int>& v) { return list_to_string(v); }
std::string format_value(double v) { return format_double(v); }
std::string format_value(int v) { return std::to_string(v); }
std::string format_value(std::uint64_t v) { return std::to_string(v); }

void check_fan_out_list(const ssdcore::EngineConfig& c) {
  const bool list_mode = c.fan_out_mode == "list";
  const std::string value = list_to_string(c.fan_out_list);
  if (!list_mode) {
    if (!c.fan_out_list.empty()) {
      invalid("fan_out_list", value,
              "[] unless fan_out_mode = \"list\" (it is \"" + c.fan_out_mode + "\")");
    }
    return;
  }
  const std::string allowed = std::to_string(c.K + 1) + " entries (K+1), each >= 0, sum 1.." +
                              std::to_string(EngineConfig::kMaxFanOut);
  if (c.fan_out_list.size() != static_cast<std::size_t>(c.K) + 1) invalid("fan_out_list", value, allowed);
  long long sum = 0;
  for (int f : c.fan_out_list) {
    if (f < 0) invalid("fan_out_list", value, allowed);
    sum += f;
  }
  if (sum < 1 || sum > EngineConfig::kMaxFanOut) invalid("fan_out_list", value, allowed);
}

}  // namespace

const char* to_string(Mode m) { return kModeNames[static_cast<int>(m)]; }
const char* to_string(FanOutMode m) { return kFanOutModeNames[static_cast<int>(m)]; }

Mode parse_mode(const std::string& s) { return static_cast<Mode>(parse_or_throw(kModeNames, s, "mode")); }
FanOutMode parse_fan_out_mode(const std::string& s) {
  return static_cast<FanOutMode>(parse_or_throw(kFanOutModeNames, s, "fan_out_mode"));
}
Backup parse_backup(const std::string& s) {
  return static_cast<Backup>(parse_or_throw(kBackupNames, s, "backup"));
}

}  // namespace ssd

namespace ssdcore {

const char* to_string(Backup b) noexcept {
  const int i = static_cast<int>(b);
  return i >= 0 && i < kNumBackups ? ssd::kBackupNames[i] : "?";
}

void EngineConfig::validate() const {
  using namespace ssd;
  check_name("mode", mode, kModeNames);
  check_range("K", K, 1, kMaxK);
  check_name("fan_out_mode", fan_out_mode, kFanOutModeNames);
  check_range("fan_out_budget", fan_out_budget, 1, kMaxFanOut);
  check_fan_out_list(*this);
  check_name("backup", backup, kBackupNames);
  check_min("auto_jit_max_batch", auto_jit_max_batch, 0);
  if (!(saguaro_c >= 0.0 && saguaro_c <= 1.0)) invalid("saguaro_c", format_double(saguaro_c), "[0, 1]");
  check_range("max_batch", max_batch, 1, kMaxBatch);
  check_range("max_context", max_context, kMinContext, kMaxContext);
  check_range("ngram_n", ngram_n, 1, kMaxNgramN);
  check_range("ngram_min_n", ngram_min_n, 1, ngram_n);
  // seed: every uint64 value is valid.
  check_min("stats_window", stats_window, 1);
  check_range("spin_wait_us", spin_wait_us, 0, kMaxSpinWaitUs);
}

std::string EngineConfig::to_string() const {
  using ssd::format_value;
  std::string out = "EngineConfig(";
  const char* sep = "";
  for_each_field([&](const char* name, auto member) {
    out += sep;
    out += name;
    out += "=" + format_value(this->*member);
    sep = ", ";
  });
  return out + ")";
}

}  // namespace ssdcore
