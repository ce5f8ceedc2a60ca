#include "docket/config.hpp"

#include <sys/stat.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "core/arg_template.hpp"
#include "core/text.hpp"
#include "docket/errors.hpp"
#include "docket/job.hpp"
#include "docket/json.hpp"
#include "executors/process.hpp"

extern char** environ;

namespace docket {

// ---------------------------------------------------------------------------------------------
// Durations, sizes, suggestions

Millis parse_duration(std::string_view text, const std::string& what) {
  std::string s(text);
  s.erase(std::remove_if(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); }), s.end());
  if (!s.empty() && s[0] == '-')
    throw ConfigError(what + ": \"" + std::string(text) + "\" is negative; a duration is >= 0");
  std::size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  const std::string number = s.substr(0, i);
  const std::string unit = s.substr(i);
  double value = 0;
  try {
    std::size_t used = 0;
    value = std::stod(number, &used);
    if (used != number.size()) throw std::invalid_argument("trailing");
  } catch (...) {
    throw ConfigError(
        what + ": \"" + std::string(text) +
        "\" is not a duration; write a number and a unit, like \"250ms\", \"30s\", \"10m\", \"2h\", \"7d\"");
  }
  double ms = 0;
  if (unit == "ms") {
    ms = value;
  } else if (unit == "s" || unit.empty()) {
    ms = value * 1000;
  } else if (unit == "m" || unit == "min") {
    ms = value * 60000;
  } else if (unit == "h") {
    ms = value * 3600000;
  } else if (unit == "d") {
    ms = value * 86400000;
  } else {
    throw ConfigError(what + ": unknown unit \"" + unit + "\" in \"" + std::string(text) + "\"; use ms, s, m, h or d");
  }
  // At most 100 years: a deadline is now + duration in nanoseconds (64 bits, ~292 years from the
  // epoch), so anything longer would overflow it.
  if (!std::isfinite(ms) || ms < 0 || ms > 36500.0 * 86400000) {
    throw ConfigError(what + ": duration out of range (at most 36500d) in \"" + std::string(text) + "\"");
  }
  return Millis(static_cast<long long>(std::llround(ms)));
}

void check_rate(std::string_view text, const std::string& what) {
  const auto bad = [&] {
    return ConfigError(
        what + ": \"" + std::string(text.substr(0, 100)) +
        "\" is not a rate; write N/PERIOD such as \"100/1m\", \"20/s\" or \"5/500ms\" (units ms, s, m, h, d)");
  };
  const auto slash = text.find('/');
  if (text.size() > 100 || slash == std::string_view::npos) throw bad();
  std::string n(text.substr(0, slash)), period(text.substr(slash + 1));
  for (auto* s : {&n, &period}) {
    s->erase(std::remove_if(s->begin(), s->end(), [](unsigned char c) { return std::isspace(c); }), s->end());
  }
  if (n.empty() || n.size() > 7 || !std::all_of(n.begin(), n.end(), [](unsigned char c) { return std::isdigit(c); }))
    throw bad();
  const long count = std::stol(n);
  if (count < 1 || count > 1000000) throw ConfigError(what + ": a rate allows 1 to 1000000 jobs per period, got " + n);
  std::size_t digits = 0;
  while (digits < period.size() && (std::isdigit(static_cast<unsigned char>(period[digits])) || period[digits] == '.'))
    ++digits;
  const std::string unit = period.substr(digits);
  if (unit != "ms" && unit != "s" && unit != "m" && unit != "h" && unit != "d") throw bad();
  const Millis p = parse_duration(digits == 0 ? "1" + period : period, what);
  if (p < Millis(1) || p > Millis(86400000)) throw ConfigError(what + ": the rate's period must be between 1ms and 1d");
}

void check_partition_path(std::string_view text, const std::string& what) {
  // As docket.partition_path: args. then 1 to 8 names of letters, digits, _ or -, each 1-64 long.
  static const std::regex path(R"(args(\.[A-Za-z0-9_-]{1,64}){1,8})");
  if (text.size() > 600 || !std::regex_match(text.begin(), text.end(), path)) {
    throw ConfigError(what + ": \"" + std::string(text.substr(0, 100)) +
                      "\" is not a partition; write a path into args such as \"args.tenant\" or \"args.source.host\" "
                      "(1 to 8 names of letters, digits, _ or -)");
  }
}

std::string format_duration(Millis d) {
  const long long ms = d.count();
  auto fmt = [](double v, const char* unit) {
    std::ostringstream out;
    out << v << unit;
    return out.str();
  };
  if (ms % 86400000 == 0 && ms >= 86400000) return fmt(static_cast<double>(ms) / 86400000.0, "d");
  if (ms % 3600000 == 0 && ms >= 3600000) return fmt(static_cast<double>(ms) / 3600000.0, "h");
  if (ms % 60000 == 0 && ms >= 60000) return fmt(static_cast<double>(ms) / 60000.0, "m");
  if (ms >= 1000) return fmt(static_cast<double>(ms) / 1000.0, "s");
  return fmt(static_cast<double>(ms), "ms");
}

namespace {

std::size_t parse_size(const std::string& text, const std::string& what) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  double value = 0;
  try {
    value = std::stod(text.substr(0, i));
  } catch (...) {
    throw ConfigError(what + ": \"" + text + "\" is not a size; write e.g. \"1MiB\", \"512KiB\" or a byte count");
  }
  std::string unit = text.substr(i);
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  double mult = 1;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "KiB" || unit == "KB" || unit == "k")
    mult = 1024;
  else if (unit == "MiB" || unit == "MB" || unit == "M")
    mult = 1024.0 * 1024;
  else if (unit == "GiB" || unit == "GB" || unit == "G")
    mult = 1024.0 * 1024 * 1024;
  else
    throw ConfigError(what + ": unknown size unit \"" + unit + "\"; use B, KiB, MiB or GiB");
  // A byte count past 2^53 is no setting anyone means, and would not convert back exactly.
  if (!std::isfinite(value * mult) || value * mult > 9007199254740992.0) {
    throw ConfigError(what + ": size \"" + text + "\" is out of range");
  }
  return static_cast<std::size_t>(value * mult);
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbours each cost one, so "concurency" and "bsae" are one edit from the right key.
std::size_t edit_distance(const std::string& a, const std::string& b) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  auto same = [&](std::size_t i, std::size_t j) { return std::tolower(a[i]) == std::tolower(b[j]); };
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (same(i - 1, j - 1) ? 0 : 1)});
      if (i > 1 && j > 1 && same(i - 1, j - 2) && same(i - 2, j - 1)) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

}  // namespace

std::string suggest(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  std::size_t best_d = std::string::npos;
  for (const auto& k : known) {
    const std::size_t d = edit_distance(key, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  // Close enough to be a typo: at most a third of the word, and at least one edit allowed.
  if (best_d <= std::max<std::size_t>(1, std::max(key.size(), best.size()) / 3)) return best;
  return "";
}

// ---------------------------------------------------------------------------------------------
// Backoff and worker defaults

Millis Backoff::wait_after(int attempt, std::mt19937_64& rng) const {
  const double n = attempt < 1 ? 1.0 : static_cast<double>(attempt);
  const double cap = static_cast<double>(std::max<long long>(0, max.count()));
  double nominal = 0;
  switch (strategy) {
    case Strategy::fixed:
      nominal = static_cast<double>(std::max<long long>(0, delay.count()));
      break;
    case Strategy::linear:
      nominal = std::min(cap, static_cast<double>(std::max<long long>(0, base.count())) * n);
      break;
    case Strategy::exponential:
      // 2^(n-1) overflows a double past ~1024: cap the exponent, the cap applies long before.
      nominal =
          std::min(cap, static_cast<double>(std::max<long long>(0, base.count())) * std::exp2(std::min(n - 1.0, 60.0)));
      break;
  }
  // Jitter only ever adds: a wait is never shorter than the strategy says.
  const double j = std::clamp(jitter, 0.0, 1.0);
  if (j > 0 && nominal > 0) {
    std::uniform_real_distribution<double> extra(0.0, j);
    nominal *= 1.0 + extra(rng);
  }
  return Millis(static_cast<long long>(nominal));
}

void check_callback_base_url(const std::string& url, const std::string& kind_field) {
  const std::string why = kind_field +
                          ".callback = true needs worker.callback_base_url, the API's base URL as the "
                          "endpoint reaches it (http:// or https://, e.g. \"https://docket.internal:8080\")";
  if (url.empty()) throw ConfigError(why + "; it is not set");
  const bool https = url.rfind("https://", 0) == 0;
  const std::size_t start = https ? 8 : 7;
  const bool printable = std::none_of(url.begin(), url.end(), [](unsigned char c) { return c <= 0x20 || c >= 0x7f; });
  if ((!https && url.rfind("http://", 0) != 0) || url.size() <= start || url[start] == '/' || !printable ||
      url.size() > 2000 || url.find_first_of("?#") != std::string::npos) {
    throw ConfigError(why + "; got \"" + url.substr(0, 200) + "\"");
  }
}

Millis WorkerConfig::effective_heartbeat() const {
  if (heartbeat_interval.count() > 0) return heartbeat_interval;
  return std::max(Millis(100), lease / 6);
}

Millis WorkerConfig::effective_rescue() const {
  if (rescue_interval.count() > 0) return rescue_interval;
  return std::max(Millis(100), lease / 4);
}

Pooler parse_pooler(const std::string& text, const std::string& field) {
  if (text == "none") return Pooler::none;
  if (text == "transaction") return Pooler::transaction;
  throw ConfigError(field +
                    " must be \"none\" (a direct connection or a session pool) or \"transaction\" (a pooler "
                    "in transaction mode, e.g. PgBouncer pool_mode=transaction), got \"" +
                    clean_text(text, 64, Keep::head) + "\"");
}

// ---------------------------------------------------------------------------------------------
// Typed fields shared by the TOML file and DOCKET_* variables

namespace {

/// `queues`: an array of names, or a table of name = concurrency.
enum class Type { string, integer, boolean, duration, strings, size, number, queues };
using Value = std::variant<std::string, long long, bool, Millis, std::vector<std::string>, std::size_t, double,
                           std::map<std::string, long long>>;

/// A per-queue concurrency: 1..10000, like worker.concurrency.
long long queue_slots(long long n, const std::string& what) {
  if (n < 1 || n > 10000) throw ConfigError(what + " must be between 1 and 10000, got " + std::to_string(n));
  return n;
}

struct Field {
  std::string key;
  Type type;
  std::function<void(Config&, const Value&)> set;
};

struct Section {
  std::string name;
  std::vector<Field> fields;
};

template <class T>
const T& as(const Value& v) {
  return std::get<T>(v);
}

const std::vector<Section>& sections() {
  static const std::vector<Section> all = {
      {"",
       {
           {"database_url", Type::string, [](Config& c, const Value& v) { c.database_url = as<std::string>(v); }},
           {"pooler", Type::string,
            [](Config& c, const Value& v) { c.pooler = parse_pooler(as<std::string>(v), "pooler"); }},
           {"listen_url", Type::string, [](Config& c, const Value& v) { c.worker.listen_url = as<std::string>(v); }},
       }},
      {"worker",
       {
           {"queues", Type::queues,
            [](Config& c, const Value& v) {
              c.worker.queue_concurrency.clear();
              if (const auto* names = std::get_if<std::vector<std::string>>(&v)) {
                c.worker.queues = *names;
                return;
              }
              c.worker.queues.clear();
              for (const auto& [name, n] : as<std::map<std::string, long long>>(v)) {
                c.worker.queues.push_back(name);
                c.worker.queue_concurrency[name] = static_cast<int>(n);
              }
            }},
           {"concurrency", Type::integer,
            [](Config& c, const Value& v) { c.worker.concurrency = static_cast<int>(as<long long>(v)); }},
           {"shutdown_timeout", Type::duration,
            [](Config& c, const Value& v) { c.worker.shutdown_timeout = as<Millis>(v); }},
           {"stuck_after", Type::duration, [](Config& c, const Value& v) { c.worker.stuck_after = as<Millis>(v); }},
           {"lease", Type::duration, [](Config& c, const Value& v) { c.worker.lease = as<Millis>(v); }},
           {"heartbeat_interval", Type::duration,
            [](Config& c, const Value& v) { c.worker.heartbeat_interval = as<Millis>(v); }},
           {"rescue_interval", Type::duration,
            [](Config& c, const Value& v) { c.worker.rescue_interval = as<Millis>(v); }},
           {"poll_interval", Type::duration, [](Config& c, const Value& v) { c.worker.poll_interval = as<Millis>(v); }},
           {"promote_interval", Type::duration,
            [](Config& c, const Value& v) { c.worker.promote_interval = as<Millis>(v); }},
           {"claim_batch", Type::integer,
            [](Config& c, const Value& v) { c.worker.claim_batch = static_cast<int>(as<long long>(v)); }},
           {"prune_interval", Type::duration,
            [](Config& c, const Value& v) { c.worker.prune_interval = as<Millis>(v); }},
           {"retain_completed", Type::duration,
            [](Config& c, const Value& v) { c.worker.retain_completed = as<Millis>(v); }},
           {"retain_failed", Type::duration, [](Config& c, const Value& v) { c.worker.retain_failed = as<Millis>(v); }},
           {"name", Type::string, [](Config& c, const Value& v) { c.worker.name = as<std::string>(v); }},
           {"metrics_listen", Type::string,
            [](Config& c, const Value& v) { c.worker.metrics_listen = as<std::string>(v); }},
           {"callback_base_url", Type::string,
            [](Config& c, const Value& v) { c.worker.callback_base_url = as<std::string>(v); }},
       }},
      {"api",
       {
           {"listen", Type::string, [](Config& c, const Value& v) { c.api.listen = as<std::string>(v); }},
           {"tokens", Type::strings, [](Config& c, const Value& v) { c.api.tokens = as<std::vector<std::string>>(v); }},
           {"metrics_auth", Type::boolean, [](Config& c, const Value& v) { c.api.metrics_auth = as<bool>(v); }},
           {"max_body", Type::size, [](Config& c, const Value& v) { c.api.max_body = as<std::size_t>(v); }},
           {"threads", Type::integer,
            [](Config& c, const Value& v) { c.api.threads = static_cast<int>(as<long long>(v)); }},
           {"max_list_limit", Type::integer,
            [](Config& c, const Value& v) { c.api.max_list_limit = static_cast<int>(as<long long>(v)); }},
           {"db_connections", Type::integer,
            [](Config& c, const Value& v) { c.api.db_connections = static_cast<int>(as<long long>(v)); }},
           {"statement_timeout", Type::duration,
            [](Config& c, const Value& v) { c.api.statement_timeout = as<Millis>(v); }},
           {"lock_timeout", Type::duration, [](Config& c, const Value& v) { c.api.lock_timeout = as<Millis>(v); }},
           {"max_connections", Type::integer,
            [](Config& c, const Value& v) { c.api.max_connections = static_cast<int>(as<long long>(v)); }},
           {"max_header_bytes", Type::size,
            [](Config& c, const Value& v) { c.api.max_header_bytes = as<std::size_t>(v); }},
           {"max_response", Type::size, [](Config& c, const Value& v) { c.api.max_response = as<std::size_t>(v); }},
           {"header_timeout", Type::duration, [](Config& c, const Value& v) { c.api.header_timeout = as<Millis>(v); }},
           {"body_timeout", Type::duration, [](Config& c, const Value& v) { c.api.body_timeout = as<Millis>(v); }},
           {"idle_timeout", Type::duration, [](Config& c, const Value& v) { c.api.idle_timeout = as<Millis>(v); }},
       }},
      {"log",
       {
           {"level", Type::string, [](Config& c, const Value& v) { c.log.level = as<std::string>(v); }},
           {"format", Type::string, [](Config& c, const Value& v) { c.log.format = as<std::string>(v); }},
           {"jobs", Type::boolean, [](Config& c, const Value& v) { c.log.jobs = as<bool>(v); }},
       }},
  };
  return all;
}

std::vector<std::string> keys_of(const std::vector<Field>& fields) {
  std::vector<std::string> out;
  out.reserve(fields.size());
  for (const auto& f : fields) out.push_back(f.key);
  return out;
}

std::string where(const toml::node& node, const std::string& origin) {
  const auto& src = node.source();
  if (src.begin.line == 0) return origin;
  return origin + ":" + std::to_string(src.begin.line);
}

std::string unknown_key(const std::string& origin_line, const std::string& key, const std::string& table,
                        const std::vector<std::string>& known) {
  std::string msg = origin_line + ": unknown key \"" + key + "\"" + (table.empty() ? "" : " in [" + table + "]");
  const std::string hint = suggest(key, known);
  if (!hint.empty()) {
    msg += "; did you mean \"" + hint + "\"?";
  } else {
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    msg += "; known keys: " + list;
  }
  return msg;
}

std::string type_name(Type t) {
  switch (t) {
    case Type::string:
      return "a string";
    case Type::integer:
      return "an integer";
    case Type::boolean:
      return "true or false";
    case Type::duration:
      return "a duration string like \"30s\"";
    case Type::strings:
      return "an array of strings";
    case Type::size:
      return "a size like \"1MiB\" or a byte count";
    case Type::number:
      return "a number";
    case Type::queues:
      return "an array of strings (queue names), or a table of queue = concurrency like { default = 10, imports = 2 }";
  }
  return "a value";
}

/// Every integer setting is an int: a larger value must not wrap around into a valid one.
long long in_int_range(long long v, const std::string& what) {
  if (v < INT_MIN || v > INT_MAX) {
    throw ConfigError(what + " must be between " + std::to_string(INT_MIN) + " and " + std::to_string(INT_MAX) +
                      ", got " + std::to_string(v));
  }
  return v;
}

Value from_node(const toml::node& node, Type type, const std::string& what) {
  auto wrong = [&]() -> ConfigError { return ConfigError(what + " must be " + type_name(type)); };
  switch (type) {
    case Type::string:
      if (auto v = node.value<std::string>(); v && node.is_string()) return *v;
      throw wrong();
    case Type::integer:
      if (node.is_integer()) return in_int_range(*node.value<long long>(), what);
      throw wrong();
    case Type::boolean:
      if (node.is_boolean()) return *node.value<bool>();
      throw wrong();
    case Type::number:
      if (node.is_number()) return *node.value<double>();
      throw wrong();
    case Type::duration:
      if (node.is_string()) return parse_duration(*node.value<std::string>(), what);
      if (node.is_integer()) return parse_duration(std::to_string(*node.value<long long>()) + "s", what);
      throw wrong();
    case Type::size:
      if (node.is_string()) return parse_size(*node.value<std::string>(), what);
      if (node.is_integer()) return parse_size(std::to_string(*node.value<long long>()), what);
      throw wrong();
    case Type::queues:
      if (const auto* table = node.as_table()) {
        std::map<std::string, long long> out;
        for (const auto& [k, v] : *table) {
          const std::string field = what + "." + std::string(k.str());
          if (!v.is_integer()) throw ConfigError(field + " must be an integer (the queue's concurrency)");
          out[std::string(k.str())] = queue_slots(*v.value<long long>(), field);
        }
        return out;
      }
      [[fallthrough]];
    case Type::strings: {
      const auto* arr = node.as_array();
      if (!arr) throw wrong();
      std::vector<std::string> out;
      for (const auto& item : *arr) {
        if (!item.is_string()) throw wrong();
        out.push_back(*item.value<std::string>());
      }
      return out;
    }
  }
  throw wrong();
}

Value from_env(const std::string& text, Type type, const std::string& what) {
  switch (type) {
    case Type::string:
      return text;
    case Type::integer:
      try {
        std::size_t used = 0;
        long long v = std::stoll(text, &used);
        if (used != text.size()) throw std::invalid_argument("x");
        return in_int_range(v, what);
      } catch (const ConfigError&) {
        throw;
      } catch (...) {
        throw ConfigError(what + " must be an integer, got \"" + text + "\"");
      }
    case Type::number:
      try {
        return std::stod(text);
      } catch (...) {
        throw ConfigError(what + " must be a number, got \"" + text + "\"");
      }
    case Type::boolean:
      if (text == "1" || text == "true" || text == "yes") return true;
      if (text == "0" || text == "false" || text == "no") return false;
      throw ConfigError(what + " must be true or false, got \"" + text + "\"");
    case Type::duration:
      return parse_duration(text, what);
    case Type::size:
      return parse_size(text, what);
    case Type::queues:
      if (text.find('=') != std::string::npos) {  // "default=10,imports=2"
        std::map<std::string, long long> out;
        std::stringstream in(text);
        std::string item;
        while (std::getline(in, item, ',')) {
          const auto eq = item.rfind('=');
          std::string name = item.substr(0, eq == std::string::npos ? item.size() : eq);
          name.erase(0, name.find_first_not_of(' '));
          name.erase(name.find_last_not_of(' ') + 1);
          if (eq == std::string::npos || name.empty())
            throw ConfigError(what + " must be queue=concurrency pairs like \"default=10,imports=2\", got \"" + item +
                              "\"");
          const Value n = from_env(item.substr(eq + 1), Type::integer, what + "." + name);
          out[name] = queue_slots(as<long long>(n), what + "." + name);
        }
        return out;
      }
      [[fallthrough]];
    case Type::strings: {
      std::vector<std::string> out;
      std::stringstream in(text);
      std::string item;
      while (std::getline(in, item, ',')) {
        item.erase(0, item.find_first_not_of(' '));
        item.erase(item.find_last_not_of(' ') + 1);
        if (!item.empty()) out.push_back(item);
      }
      return out;
    }
  }
  return text;
}

// --- kinds ----------------------------------------------------------------------------------

std::string str(const toml::node& n, const std::string& what) {
  return as<std::string>(from_node(n, Type::string, what));
}

std::map<std::string, std::string> string_map(const toml::node& n, const std::string& what) {
  const auto* t = n.as_table();
  if (!t) throw ConfigError(what + " must be a table of strings, like { Authorization = \"Bearer x\" }");
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : *t) out[std::string(k.str())] = str(v, what + "." + std::string(k.str()));
  return out;
}

Backoff parse_backoff(const toml::node& n, const std::string& origin, const std::string& what) {
  const auto* t = n.as_table();
  if (!t)
    throw ConfigError(where(n, origin) + ": " + what +
                      " must be a table like { strategy = \"exponential\", base = \"2s\" }");
  Backoff b;
  static const std::vector<std::string> known = {"strategy", "base", "max", "delay", "jitter"};
  bool base_set = false;
  for (const auto& [k, v] : *t) {
    const std::string key(k.str());
    const std::string field = what + "." + key;
    if (key == "strategy") {
      const std::string s = str(v, field);
      if (s == "fixed")
        b.strategy = Backoff::Strategy::fixed;
      else if (s == "linear")
        b.strategy = Backoff::Strategy::linear;
      else if (s == "exponential")
        b.strategy = Backoff::Strategy::exponential;
      else {
        const std::string hint = suggest(s, {"fixed", "linear", "exponential"});
        throw ConfigError(where(v, origin) + ": " + field + " \"" + s +
                          "\" is not a strategy; use fixed, linear or exponential" +
                          (hint.empty() ? "" : " (did you mean \"" + hint + "\"?)"));
      }
    } else if (key == "base") {
      b.base = as<Millis>(from_node(v, Type::duration, field));
      base_set = true;
    } else if (key == "max") {
      b.max = as<Millis>(from_node(v, Type::duration, field));
    } else if (key == "delay") {
      b.delay = as<Millis>(from_node(v, Type::duration, field));
    } else if (key == "jitter") {
      b.jitter = as<double>(from_node(v, Type::number, field));
      if (b.jitter < 0 || b.jitter > 1) throw ConfigError(where(v, origin) + ": " + field + " must be between 0 and 1");
    } else {
      throw ConfigError(unknown_key(where(v, origin), key, what, known));
    }
  }
  if (b.strategy == Backoff::Strategy::fixed && base_set && !t->contains("delay")) b.delay = b.base;
  return b;
}

CrawlExecutor parse_crawl(const toml::node& n, const std::string& origin, const std::string& kind) {
  const std::string what = "kinds." + kind + ".crawl";
  const auto* t = n.as_table();
  if (!t)
    throw ConfigError(where(n, origin) + ": " + what + " must be a table like { url = \"...\", items = \"/items\" }");
  CrawlExecutor c;
  c.collection = kind;
  static const std::vector<std::string> known = {
      "url",     "items",        "key",       "collection",   "next",        "delay",     "timeout",
      "headers", "activate_sql", "max_pages", "max_response", "allow_hosts", "max_shrink"};
  for (const auto& [k, v] : *t) {
    const std::string key(k.str());
    const std::string field = what + "." + key;
    if (key == "url")
      c.url = str(v, field);
    else if (key == "items")
      c.items = str(v, field);
    else if (key == "key")
      c.key = str(v, field);
    else if (key == "collection")
      c.collection = str(v, field);
    else if (key == "next")
      c.next = str(v, field);
    else if (key == "delay")
      c.delay = as<Millis>(from_node(v, Type::duration, field));
    else if (key == "timeout")
      c.request_timeout = as<Millis>(from_node(v, Type::duration, field));
    else if (key == "headers")
      c.headers = string_map(v, field);
    else if (key == "activate_sql") {
      c.activate_sql = v.is_string() ? std::vector<std::string>{str(v, field)}
                                     : as<std::vector<std::string>>(from_node(v, Type::strings, field));
      if (c.activate_sql.empty()) throw ConfigError(where(v, origin) + ": " + field + " must not be empty");
    } else if (key == "max_pages")
      c.max_pages = static_cast<int>(as<long long>(from_node(v, Type::integer, field)));
    else if (key == "max_response")
      c.max_response = as<std::size_t>(from_node(v, Type::size, field));
    else if (key == "allow_hosts")
      c.allow_hosts = as<std::vector<std::string>>(from_node(v, Type::strings, field));
    else if (key == "max_shrink") {
      c.max_shrink = as<double>(from_node(v, Type::number, field));
      if (!(c.max_shrink >= 0 && c.max_shrink <= 1))
        throw ConfigError(where(v, origin) + ": " + field + " must be between 0 and 1 (1 disables the guard)");
    } else
      throw ConfigError(unknown_key(where(v, origin), key, what, known));
  }
  if (c.url.empty()) throw ConfigError(where(n, origin) + ": " + what + ".url is required");
  // {args.NAME} placeholders: checked here, so a job's args are all that is left to refuse at run time.
  check_url_template(c.url, where(n, origin) + ": " + what + ".url");
  arg_placeholders(c.collection, where(n, origin) + ": " + what + ".collection");
  for (const auto& [name, value] : c.headers) {
    if (value.find("{args.") != std::string::npos) {
      throw ConfigError(where(n, origin) + ": " + what + ".headers." + name +
                        ": {args.NAME} works only in crawl.url and crawl.collection; headers are sent as written");
    }
  }
  return c;
}

// --- schedules --------------------------------------------------------------------------------

/// A TOML value as JSON (a schedule's args): bounded depth like any outside JSON, no NUL (jsonb
/// refuses it), dates as their TOML text.
Json toml_to_json(const toml::node& n, const std::string& what, const std::string& origin, int depth = 0) {
  if (depth > kMaxJsonDepth) {
    throw ConfigError(where(n, origin) + ": " + what + " is nested deeper than " + std::to_string(kMaxJsonDepth) +
                      " levels");
  }
  if (const auto* t = n.as_table()) {
    Json out = Json::object();
    for (const auto& [k, v] : *t) {
      const std::string key(k.str());
      if (key.find('\0') != std::string::npos)
        throw ConfigError(where(v, origin) + ": " + what + " has a key with NUL");
      out[key] = toml_to_json(v, what + "." + key, origin, depth + 1);
    }
    return out;
  }
  if (const auto* a = n.as_array()) {
    Json out = Json::array();
    for (const auto& v : *a) out.push_back(toml_to_json(v, what + "[]", origin, depth + 1));
    return out;
  }
  if (const auto* v = n.as_string()) {
    if (v->get().find('\0') != std::string::npos) {
      throw ConfigError(where(n, origin) + ": " + what + " must not contain NUL characters");
    }
    return v->get();
  }
  if (const auto* v = n.as_integer()) return v->get();
  if (const auto* v = n.as_floating_point()) {
    if (!std::isfinite(v->get())) throw ConfigError(where(n, origin) + ": " + what + " must be a finite number");
    return v->get();
  }
  if (const auto* v = n.as_boolean()) return v->get();
  std::ostringstream text;
  if (const auto* v = n.as_date()) text << *v;
  if (const auto* v = n.as_time()) text << *v;
  if (const auto* v = n.as_date_time()) text << *v;
  return text.str();
}

/// One of `allowed`, or a ConfigError naming the field and listing them.
std::string one_of(const toml::node& v, const std::string& field, const std::vector<std::string>& allowed,
                   const std::string& origin) {
  std::string value = str(v, field);
  if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    throw ConfigError(where(v, origin) + ": " + field + " must be one of " + list + ", got \"" + value + "\"");
  }
  return value;
}

/// [schedules.NAME]. What needs the database (the cron fields in detail, whether PostgreSQL
/// knows the zone) is checked when the schedule is applied, with the same field names.
ScheduleSpec parse_schedule(const std::string& name, const toml::node& n, const std::string& origin) {
  const std::string what = "schedules." + name;
  const auto* t = n.as_table();
  if (!t) throw ConfigError(where(n, origin) + ": [" + what + "] must be a table");
  const bool printable = std::none_of(name.begin(), name.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
  if (name.find_first_not_of(' ') == std::string::npos || name.size() > 200 || !printable || !valid_utf8(name)) {
    throw ConfigError(where(n, origin) + ": [" + what +
                      "]: a schedule name must be 1 to 200 printable characters (quote it: [schedules.\"a b\"])");
  }
  static const std::vector<std::string> known = {
      "cron", "kind", "args", "tz", "queue", "spread", "on_overlap", "on_missed", "enabled", "priority", "max_retries"};
  ScheduleSpec s;
  s.name = name;
  s.source = "config";
  for (const auto& [key_node, v] : *t) {
    const std::string key(key_node.str());
    const std::string field = what + "." + key;
    if (key == "cron") {
      s.cron = str(v, field);
      // The shape only; the fields' values are checked by docket.cron_parse when applied.
      std::istringstream words(s.cron);
      std::vector<std::string> parts{std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
      if (s.cron.size() > 200 || parts.empty() || (parts[0][0] != '@' && parts.size() != 5)) {
        throw ConfigError(where(v, origin) + ": " + field +
                          " must be 5 fields (minute hour day-of-month month day-of-week), @hourly, @daily, @weekly, "
                          "@monthly, @yearly or \"@every 10m\", got \"" +
                          s.cron.substr(0, 200) + "\"");
      }
    } else if (key == "kind") {
      s.kind = str(v, field);
    } else if (key == "args") {
      if (!v.as_table()) throw ConfigError(where(v, origin) + ": " + field + " must be a table: args = { id = 42 }");
      s.args = toml_to_json(v, field, origin);
    } else if (key == "tz") {
      s.tz = str(v, field);
      const bool iana = s.tz == "UTC" || s.tz == "GMT" ||
                        (s.tz.size() <= 64 && s.tz.find('/') != std::string::npos &&
                         std::isupper(static_cast<unsigned char>(s.tz[0])) &&
                         std::all_of(s.tz.begin(), s.tz.end(), [](unsigned char c) {
                           return std::isalnum(c) || c == '/' || c == '_' || c == '-' || c == '+';
                         }));
      if (!iana) {
        throw ConfigError(where(v, origin) + ": " + field +
                          " must be an IANA time zone like \"Europe/Lisbon\" or \"UTC\", got \"" + s.tz.substr(0, 64) +
                          "\"");
      }
    } else if (key == "queue") {
      s.queue = str(v, field);
    } else if (key == "spread") {
      s.spread = as<Millis>(from_node(v, Type::duration, field));
      if (*s.spread > Millis(366LL * 86400 * 1000))
        throw ConfigError(where(v, origin) + ": " + field + " must be at most 366d");
    } else if (key == "on_overlap") {
      s.on_overlap = one_of(v, field, {"skip", "allow", "replace"}, origin);
    } else if (key == "on_missed") {
      s.on_missed = one_of(v, field, {"skip", "latest", "all"}, origin);
    } else if (key == "enabled") {
      s.enabled = as<bool>(from_node(v, Type::boolean, field));
    } else if (key == "priority") {
      const auto p = as<long long>(from_node(v, Type::integer, field));
      if (p < 0 || p > 1000)
        throw ConfigError(where(v, origin) + ": " + field + " must be between 0 (runs first) and 1000");
      s.priority = static_cast<int>(p);
    } else if (key == "max_retries") {
      const auto r = as<long long>(from_node(v, Type::integer, field));
      if (r < 0 || r > 1000000) throw ConfigError(where(v, origin) + ": " + field + " must be between 0 and 1000000");
      s.max_retries = static_cast<int>(r);
    } else {
      throw ConfigError(unknown_key(where(v, origin), key, what, known));
    }
  }
  if (s.cron.empty()) throw ConfigError(where(n, origin) + ": " + what + ".cron is required, like cron = \"@hourly\"");
  if (s.kind.empty())
    throw ConfigError(where(n, origin) + ": " + what + ".kind is required: the kind each slot enqueues");
  return s;
}

/// A period of uniqueness or result retention: more than 0, at most 365 days (docket.timeout_ok).
void check_period(Millis d, const std::string& what) {
  if (d <= Millis(0) || d > Millis(365LL * 86400 * 1000)) {
    throw ConfigError(what + " must be more than 0 and at most 365d");
  }
}

/// `unique = { by = "args" | ["args.report", ...], period = "10m", states = [...] }` (`key` and
/// `for` are accepted for `by` and `period`, the names of DESIGN.md's contract).
KindUnique parse_kind_unique(const toml::node& n, const std::string& origin, const std::string& what) {
  const auto* t = n.as_table();
  if (!t) {
    throw ConfigError(where(n, origin) + ": " + what +
                      " must be a table like { by = [\"args.report\"], period = \"10m\" }");
  }
  static const std::vector<std::string> known = {"by", "key", "period", "for", "states"};
  KindUnique u;
  bool have_by = false;
  for (const auto& [key_node, v] : *t) {
    const std::string key(key_node.str());
    const std::string field = what + "." + key;
    if (key == "by" || key == "key") {
      if (have_by) throw ConfigError(where(v, origin) + ": " + what + " has both by and key; write one (by)");
      have_by = true;
      u.by = v.is_string() ? std::vector<std::string>{str(v, field)}
                           : as<std::vector<std::string>>(from_node(v, Type::strings, field));
      if (u.by.empty() || u.by.size() > 16) {
        throw ConfigError(where(v, origin) + ": " + field + " must be \"args\" or 1 to 16 paths into args");
      }
      for (const auto& path : u.by) {
        if (path != "args") check_partition_path(path, where(v, origin) + ": " + field);
      }
    } else if (key == "period" || key == "for") {
      u.period = as<Millis>(from_node(v, Type::duration, field));
      check_period(*u.period, where(v, origin) + ": " + field);
    } else if (key == "states") {
      u.states = as<std::vector<std::string>>(from_node(v, Type::strings, field));
      try {
        check_unique_states(*u.states, field);
      } catch (const InvalidInput& e) {
        throw ConfigError(where(v, origin) + ": " + e.what());
      }
    } else {
      throw ConfigError(unknown_key(where(v, origin), key, what, known));
    }
  }
  if (!have_by) {
    throw ConfigError(
        where(n, origin) + ": " + what +
        ".by is required: \"args\" (all args) or the args that make a job the same, like [\"args.report\"]");
  }
  return u;
}

KindConfig parse_kind(const std::string& kind, const toml::node& n, const std::string& origin) {
  const std::string what = "kinds." + kind;
  const auto* t = n.as_table();
  if (!t) throw ConfigError(where(n, origin) + ": [" + what + "] must be a table");
  KindConfig k;
  k.kind = kind;
  static const std::vector<std::string> known = {"command",
                                                 "env",
                                                 "env_pass",
                                                 "url",
                                                 "headers",
                                                 "crawl",
                                                 "max_retries",
                                                 "backoff",
                                                 "timeout",
                                                 "max_running",
                                                 "builtin",
                                                 "max_response",
                                                 "rate",
                                                 "burst",
                                                 "queue",
                                                 "retain_completed",
                                                 "retain_failed",
                                                 "partition",
                                                 "max_running_per_key",
                                                 "rate_per_key",
                                                 "burst_per_key",
                                                 "unique",
                                                 "result_ttl",
                                                 "max_result_bytes",
                                                 "callback"};
  std::vector<std::string> executors;
  std::map<std::string, std::string> env, headers;
  std::vector<std::string> env_pass;
  std::optional<std::size_t> max_response;
  bool callback = false;
  for (const auto& [key_node, v] : *t) {
    const std::string key(key_node.str());
    const std::string field = what + "." + key;
    if (key == "command") {
      auto argv = as<std::vector<std::string>>(from_node(v, Type::strings, field));
      if (argv.empty() || argv[0].empty())
        throw ConfigError(where(v, origin) + ": " + field + " must name a program: [\"/path/to/prog\", \"arg\"]");
      k.executor = CommandExecutor{.argv = argv};
      executors.push_back("command");
    } else if (key == "env") {
      env = string_map(v, field);
    } else if (key == "env_pass") {
      env_pass = as<std::vector<std::string>>(from_node(v, Type::strings, field));
    } else if (key == "max_response") {
      max_response = as<std::size_t>(from_node(v, Type::size, field));
    } else if (key == "url") {
      const std::string url = str(v, field);
      if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
        throw ConfigError(where(v, origin) + ": " + field + " must start with http:// or https://");
      }
      k.executor = HttpExecutor{.url = url};
      executors.push_back("url");
    } else if (key == "headers") {
      headers = string_map(v, field);
    } else if (key == "callback") {
      callback = as<bool>(from_node(v, Type::boolean, field));
    } else if (key == "crawl") {
      k.executor = parse_crawl(v, origin, kind);
      executors.push_back("crawl");
    } else if (key == "builtin") {
      k.executor = BuiltinExecutor{str(v, field)};
      executors.push_back("builtin");
    } else if (key == "max_retries") {
      const auto r = as<long long>(from_node(v, Type::integer, field));
      if (r < 0 || r > 1000000) throw ConfigError(where(v, origin) + ": " + field + " must be between 0 and 1000000");
      k.max_retries = static_cast<int>(r);
    } else if (key == "backoff") {
      k.backoff = parse_backoff(v, origin, field);
    } else if (key == "timeout") {
      k.timeout = as<Millis>(from_node(v, Type::duration, field));
    } else if (key == "max_running") {
      const auto r = as<long long>(from_node(v, Type::integer, field));
      if (r < 0 || r > 1000000) throw ConfigError(where(v, origin) + ": " + field + " must be between 0 and 1000000");
      k.max_running = static_cast<int>(r);
    } else if (key == "rate") {
      k.rate = str(v, field);
      check_rate(*k.rate, where(v, origin) + ": " + field);
    } else if (key == "burst") {
      const auto b = as<long long>(from_node(v, Type::integer, field));
      if (b < 1 || b > 1000000) throw ConfigError(where(v, origin) + ": " + field + " must be between 1 and 1000000");
      k.burst = static_cast<int>(b);
    } else if (key == "partition") {
      k.keyed.partition = str(v, field);
      check_partition_path(*k.keyed.partition, where(v, origin) + ": " + field);
    } else if (key == "max_running_per_key") {
      const auto r = as<long long>(from_node(v, Type::integer, field));
      if (r < 0 || r > 1000000) throw ConfigError(where(v, origin) + ": " + field + " must be between 0 and 1000000");
      k.keyed.max_running_per_key = static_cast<int>(r);
    } else if (key == "rate_per_key") {
      k.keyed.rate_per_key = str(v, field);
      check_rate(*k.keyed.rate_per_key, where(v, origin) + ": " + field);
    } else if (key == "burst_per_key") {
      const auto b = as<long long>(from_node(v, Type::integer, field));
      if (b < 1 || b > 1000000) throw ConfigError(where(v, origin) + ": " + field + " must be between 1 and 1000000");
      k.keyed.burst_per_key = static_cast<int>(b);
    } else if (key == "queue") {
      k.queue = str(v, field);
    } else if (key == "retain_completed") {
      k.retain_completed = as<Millis>(from_node(v, Type::duration, field));
    } else if (key == "retain_failed") {
      k.retain_failed = as<Millis>(from_node(v, Type::duration, field));
    } else if (key == "unique") {
      k.unique = parse_kind_unique(v, origin, field);
    } else if (key == "result_ttl") {
      k.result_ttl = as<Millis>(from_node(v, Type::duration, field));
      check_period(*k.result_ttl, where(v, origin) + ": " + field);
    } else if (key == "max_result_bytes") {
      k.max_result_bytes = as<std::size_t>(from_node(v, Type::size, field));
      if (k.max_result_bytes < 1 || k.max_result_bytes > kMaxResultBytesCap) {
        throw ConfigError(where(v, origin) + ": " + field + " must be between 1 byte and 1MiB (the hard cap)");
      }
    } else {
      throw ConfigError(unknown_key(where(v, origin), key, what, known));
    }
  }
  if (k.burst && !k.rate) throw ConfigError(where(n, origin) + ": " + what + ".burst needs " + what + ".rate");
  if ((k.keyed.max_running_per_key || k.keyed.rate_per_key) && !k.keyed.partition) {
    throw ConfigError(where(n, origin) + ": " + what + ".max_running_per_key and rate_per_key need " + what +
                      ".partition, the path into args of the key (partition = \"args.tenant\")");
  }
  if (k.keyed.burst_per_key && !k.keyed.rate_per_key) {
    throw ConfigError(where(n, origin) + ": " + what + ".burst_per_key needs " + what + ".rate_per_key");
  }
  if (executors.size() > 1) {
    throw ConfigError(where(n, origin) + ": [" + what + "] has both " + executors[0] + " and " + executors[1] +
                      "; a kind runs with exactly one of command, url, crawl or builtin");
  }
  if (auto* cmd = std::get_if<CommandExecutor>(&k.executor)) {
    cmd->env = env;
    cmd->env_pass = env_pass;
  } else if (!env.empty() || !env_pass.empty()) {
    throw ConfigError(where(n, origin) + ": " + what + (env.empty() ? ".env_pass" : ".env") +
                      " only applies to a command kind");
  }
  if (auto* http = std::get_if<HttpExecutor>(&k.executor)) {
    http->headers = headers;
    if (max_response) http->max_response = *max_response;
    http->callback = callback;
  } else if (callback) {
    throw ConfigError(where(n, origin) + ": " + what + ".callback only applies to a url kind");
  } else if (!headers.empty()) {
    throw ConfigError(where(n, origin) + ": " + what + ".headers only applies to a url kind");
  } else if (max_response) {
    throw ConfigError(where(n, origin) + ": " + what +
                      ".max_response only applies to a url kind (a crawl sets crawl.max_response)");
  }
  return k;
}

}  // namespace

namespace {
/// Refuses a byte >= 0x80 outside strings and comments: TOML 1.0 allows none there (Docket's keys
/// are ASCII; quote a non-ASCII kind name), and toml++ 3.3 (Debian 12) reaches
/// __builtin_unreachable on some of them (U+00CF in a bare key: UBSan, found by
/// tests/fuzz/fuzz_config). Exact for valid documents; invalid ones go through toml_safe_copy.
/// toml++ 3.3's is_non_ascii_horizontal_whitespace reaches __builtin_unreachable for the code
/// points below (all but U+00A0, U+3000 and U+FEFF of three of its lookup blocks), which it
/// meets in bare keys and while scanning past an error. True for those.
bool toml_unsafe_code_point(char32_t c) {
  const auto block = [&](char32_t lo) { return c >= lo && c < lo + 0x3FA; };
  return (block(0xA0) && c != 0xA0) || (block(0xA0 + 11 * 0x3FA) && c != 0x3000) ||
         (block(0xA0 + 63 * 0x3FA) && c != 0xFEFF);
}

/// `text` with each unsafe code point replaced by a harmless one of the same UTF-8 length (U+0080,
/// U+FFFD), or nullopt when it has none. Parsing the copy first reports any error of the document
/// without toml++ ever scanning an unsafe code point.
std::optional<std::string> toml_safe_copy(std::string_view text) {
  std::optional<std::string> out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
    std::size_t len = 0;
    char32_t c = 0;
    if (b(i) >= 0xC2 && b(i) <= 0xDF && i + 1 < text.size() && (b(i + 1) & 0xC0) == 0x80) {
      len = 2;
      c = (static_cast<char32_t>(b(i) & 0x1F) << 6) | (b(i + 1) & 0x3F);
    } else if (b(i) >= 0xE0 && b(i) <= 0xEF && i + 2 < text.size() && (b(i + 1) & 0xC0) == 0x80 &&
               (b(i + 2) & 0xC0) == 0x80) {
      len = 3;
      c = (static_cast<char32_t>(b(i) & 0x0F) << 12) | (static_cast<char32_t>(b(i + 1) & 0x3F) << 6) |
          (b(i + 2) & 0x3F);
    }
    if (len == 0 || !toml_unsafe_code_point(c)) continue;
    if (!out) out.emplace(text);
    out->replace(i, len, len == 2 ? "\xC2\x80" : "\xEF\xBF\xBD");
    i += len - 1;
  }
  return out;
}

void check_toml_bytes(std::string_view text, const std::string& origin) {
  enum class In { code, comment, basic, literal, basic3, literal3 } in = In::code;
  int line = 1;
  auto at = [&](std::size_t i, std::string_view s) { return text.substr(i, s.size()) == s; };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') ++line;
    switch (in) {
      case In::code:
        if (static_cast<unsigned char>(c) >= 0x80) {
          throw ConfigError(origin + ":" + std::to_string(line) +
                            ": invalid TOML: a non-ASCII character outside a string or comment (quote the key)");
        }
        if (c == '#') {
          in = In::comment;
        } else if (at(i, R"(""")")) {
          in = In::basic3;
          i += 2;
        } else if (at(i, "'''")) {
          in = In::literal3;
          i += 2;
        } else if (c == '"') {
          in = In::basic;
        } else if (c == '\'') {
          in = In::literal;
        }
        break;
      case In::comment:
        if (c == '\n') in = In::code;
        break;
      case In::basic:
        if (c == '\\') {
          ++i;
        } else if (c == '"' || c == '\n') {
          in = In::code;
        }
        break;
      case In::literal:
        if (c == '\'' || c == '\n') in = In::code;
        break;
      case In::basic3:
        if (c == '\\') {
          ++i;
        } else if (at(i, R"(""")")) {
          in = In::code;
          i += 2;
        }
        break;
      case In::literal3:
        if (at(i, "'''")) {
          in = In::code;
          i += 2;
        }
        break;
    }
  }
}
}  // namespace

Config Config::parse(std::string_view text, const std::string& origin) {
  check_toml_bytes(text, origin);
  toml::table root;
  try {
    // A valid document has unsafe code points only in strings and comments, where toml++ does
    // not test them for whitespace: the copy decides validity, then the original is parsed.
    if (const auto safe = toml_safe_copy(text)) (void)toml::parse(*safe, origin);
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    const auto& src = e.source();
    throw ConfigError(origin + ":" + std::to_string(src.begin.line) + ":" + std::to_string(src.begin.column) +
                      ": invalid TOML: " + std::string(e.description()));
  }
  Config cfg;
  std::vector<std::string> top_known = {"database_url", "pooler", "listen_url", "worker",
                                        "api",          "log",    "kinds",      "schedules"};
  for (const auto& [key_node, node] : root) {
    const std::string key(key_node.str());
    if (key == "kinds") {
      const auto* kinds = node.as_table();
      if (!kinds) throw ConfigError(where(node, origin) + ": kinds must be tables: [kinds.NAME]");
      for (const auto& [kind_node, kind_value] : *kinds) {
        const std::string kind(kind_node.str());
        if (kind.empty()) throw ConfigError(where(kind_value, origin) + ": a kind name must not be empty");
        cfg.kinds[kind] = parse_kind(kind, kind_value, origin);
      }
      continue;
    }
    if (key == "schedules") {
      const auto* schedules = node.as_table();
      if (!schedules) throw ConfigError(where(node, origin) + ": schedules must be tables: [schedules.NAME]");
      cfg.schedules_declared = true;
      for (const auto& [name_node, value] : *schedules) {
        const std::string name(name_node.str());
        cfg.schedules[name] = parse_schedule(name, value, origin);
      }
      continue;
    }
    const Section* section = nullptr;
    for (const auto& s : sections()) {
      if (s.name == key) section = &s;
    }
    if (section) {
      const auto* table = node.as_table();
      if (!table) throw ConfigError(where(node, origin) + ": [" + key + "] must be a table");
      for (const auto& [field_node, value] : *table) {
        const std::string field(field_node.str());
        auto it = std::find_if(section->fields.begin(), section->fields.end(),
                               [&](const Field& f) { return f.key == field; });
        if (it == section->fields.end()) {
          throw ConfigError(unknown_key(where(value, origin), field, key, keys_of(section->fields)));
        }
        try {
          it->set(cfg, from_node(value, it->type, key + "." + field));
        } catch (const ConfigError& e) {
          throw ConfigError(where(value, origin) + ": " + e.what());
        }
      }
      continue;
    }
    const auto& top = sections().front();
    auto it = std::find_if(top.fields.begin(), top.fields.end(), [&](const Field& f) { return f.key == key; });
    if (it == top.fields.end()) throw ConfigError(unknown_key(where(node, origin), key, "", top_known));
    it->set(cfg, from_node(node, it->type, key));
  }
  return cfg;
}

Config Config::load_file(const std::filesystem::path& path) {
  // A config is a few KiB: refuse what is not a regular file (a directory reads as empty, a FIFO
  // or /dev/zero never ends) and anything large, before reading it.
  constexpr std::uintmax_t kMaxConfigBytes = 1 << 20;
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec) throw ConfigError("cannot read config file " + path.string() + ": " + ec.message());
  if (std::filesystem::is_directory(status)) {
    throw ConfigError("config file " + path.string() + " is a directory; pass the TOML file, e.g. " +
                      (path / "docket.toml").string());
  }
  if (!std::filesystem::is_regular_file(status))
    throw ConfigError("config file " + path.string() + " is not a regular file");
  if (std::filesystem::file_size(path, ec) > kMaxConfigBytes || ec) {
    throw ConfigError("config file " + path.string() + " is larger than 1 MiB");
  }
  std::ifstream in(path);
  if (!in) throw ConfigError("cannot read config file " + path.string() + ": " + std::strerror(errno));
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw ConfigError("cannot read config file " + path.string() + ": " + std::strerror(errno));
  return parse(buf.str(), path.string());
}

namespace {
/// DOCKET_* variables that are not settings: what Docket sets for the programs it runs (a job
/// program may itself run docket), and what other parts of Docket read. DOCKET_TEST_* (the test
/// suite's) are allowed as a prefix.
const std::set<std::string, std::less<>>& not_settings() {
  static const std::set<std::string, std::less<>> all = {
      "DOCKET_JOB_ID",     "DOCKET_JOB_KIND", "DOCKET_ATTEMPT",    "DOCKET_QUEUE",  "DOCKET_API_TOKENS",
      "DOCKET_CONTROL_FD", "DOCKET_BIN",      "DOCKET_SOURCE_DIR", "DOCKET_PG_BIN", "DOCKET_EXTRA_PACKAGES"};
  return all;
}
}  // namespace

void Config::apply_env(const std::vector<std::string>& env) {
  for (const auto& entry : env) {
    const auto eq = entry.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = entry.substr(0, eq);
    const std::string value = entry.substr(eq + 1);
    if (name == "DATABASE_URL" || name == "DOCKET_DATABASE_URL") {
      if (!value.empty()) database_url = value;
      continue;
    }
    if (name.rfind("DOCKET_", 0) != 0) continue;
    // A blank token list must not quietly mean "no authentication".
    if (name == "DOCKET_API_TOKENS" && value.find_first_not_of(" ,\t") == std::string::npos) {
      throw ConfigError(
          "DOCKET_API_TOKENS is set but holds no token: unset it for tokenless loopback use, or set "
          "tokens (generate one with: openssl rand -hex 24)");
    }
    std::string rest = name.substr(7);
    std::transform(rest.begin(), rest.end(), rest.begin(), [](unsigned char c) { return std::tolower(c); });
    bool known = false;
    for (const auto& s : sections()) {
      // Top-level settings are DOCKET_<KEY> (DOCKET_POOLER); DATABASE_URL is handled above.
      if (!s.name.empty() && rest.rfind(s.name + "_", 0) != 0) continue;
      const std::string key = s.name.empty() ? rest : rest.substr(s.name.size() + 1);
      for (const auto& f : s.fields) {
        if (f.key != key) continue;
        f.set(*this, from_env(value, f.type, name));
        known = true;
      }
    }
    if (!known && !not_settings().contains(name) && name.rfind("DOCKET_TEST_", 0) != 0) {
      // A misspelt variable silently ignored is a setting silently not applied.
      std::vector<std::string> names;
      for (const auto& s : sections()) {
        for (const auto& f : s.fields) {
          std::string n = "DOCKET_" + (s.name.empty() ? "" : s.name + "_") + f.key;
          std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::toupper(c); });
          names.push_back(n);
        }
      }
      const std::string hint = suggest(name, names);
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      throw ConfigError("environment variable " + name + " is not a Docket setting" +
                        (hint.empty() ? "; known: " + list : "; did you mean " + hint + "?"));
    }
  }
}

void Config::apply_process_env() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  apply_env(env);
}

void Config::validate() const {
  if (worker.concurrency < 1 || worker.concurrency > 10000) {
    throw ConfigError("worker.concurrency must be between 1 and 10000, got " + std::to_string(worker.concurrency));
  }
  if (worker.queues.empty()) throw ConfigError("worker.queues must name at least one queue, e.g. [\"default\"]");
  for (const auto& q : worker.queues) {
    if (q.empty()) throw ConfigError("worker.queues must not contain an empty name");
  }
  if (worker.lease < Millis(500)) throw ConfigError("worker.lease must be at least 500ms");
  if (worker.effective_heartbeat() * 2 > worker.lease) {
    throw ConfigError("worker.heartbeat_interval (" + format_duration(worker.effective_heartbeat()) +
                      ") must be at most half of worker.lease (" + format_duration(worker.lease) +
                      "), or a worker under load will be declared dead while alive");
  }
  if (worker.claim_batch < 1) throw ConfigError("worker.claim_batch must be >= 1");
  if (worker.poll_interval < Millis(10)) throw ConfigError("worker.poll_interval must be at least 10ms");
  if (log.level != "trace" && log.level != "debug" && log.level != "info" && log.level != "warn" &&
      log.level != "error") {
    const std::string hint = suggest(log.level, {"trace", "debug", "info", "warn", "error"});
    throw ConfigError("log.level \"" + log.level + "\" is not a level; use trace, debug, info, warn or error" +
                      (hint.empty() ? "" : " (did you mean \"" + hint + "\"?)"));
  }
  if (log.format != "text" && log.format != "json") {
    throw ConfigError("log.format must be \"text\" or \"json\", got \"" + log.format + "\"");
  }
  if (api.max_body < 1024) throw ConfigError("api.max_body must be at least 1KiB");
  if (api.threads < 1 || api.threads > 256) throw ConfigError("api.threads must be between 1 and 256");
  if (api.max_list_limit < 1) throw ConfigError("api.max_list_limit must be >= 1");
  if (api.db_connections < 1 || api.db_connections > 64)
    throw ConfigError("api.db_connections must be between 1 and 64");
  if (api.statement_timeout < Millis(100) || api.statement_timeout > Millis(3600 * 1000))
    throw ConfigError("api.statement_timeout must be between 100ms and 1h");
  if (api.lock_timeout < Millis(10) || api.lock_timeout > api.statement_timeout)
    throw ConfigError("api.lock_timeout must be at least 10ms and at most api.statement_timeout");
  if (api.max_connections < 8 || api.max_connections > 100000)
    throw ConfigError("api.max_connections must be between 8 and 100000");
  if (api.max_header_bytes < 1024 || api.max_header_bytes > (1u << 20))
    throw ConfigError("api.max_header_bytes must be between 1KiB and 1MiB");
  if (api.max_response < 4096) throw ConfigError("api.max_response must be at least 4KiB");
  for (const auto& [key, d] : {std::pair{"api.header_timeout", api.header_timeout},
                               {"api.body_timeout", api.body_timeout},
                               {"api.idle_timeout", api.idle_timeout}}) {
    if (d < Millis(100)) throw ConfigError(std::string(key) + " must be at least 100ms");
  }
  // Durations where zero (or a value too small to mean anything) cannot be what was meant.
  if (worker.promote_interval < Millis(10)) throw ConfigError("worker.promote_interval must be at least 10ms");
  if (worker.prune_interval < Millis(1000)) throw ConfigError("worker.prune_interval must be at least 1s");
  if (worker.stuck_after < Millis(100)) throw ConfigError("worker.stuck_after must be at least 100ms");
  if (worker.heartbeat_interval.count() > 0 && worker.heartbeat_interval < Millis(10)) {
    throw ConfigError("worker.heartbeat_interval must be at least 10ms (or unset: a sixth of worker.lease)");
  }
  if (worker.rescue_interval.count() > 0 && worker.rescue_interval < Millis(10)) {
    throw ConfigError("worker.rescue_interval must be at least 10ms (or unset: a quarter of worker.lease)");
  }
  for (const auto& [name, kind] : kinds) {
    if (kind.timeout <= Millis(0)) {
      throw ConfigError("kinds." + name + ".timeout must be greater than 0, got \"" + format_duration(kind.timeout) +
                        "\": a job gets that long before it is stopped");
    }
    if (kind.queue) {
      const auto& q = *kind.queue;
      const bool printable = std::none_of(q.begin(), q.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
      if (q.find_first_not_of(" \t") == std::string::npos || q.size() > 200 || !printable) {
        throw ConfigError("kinds." + name + ".queue must be a non-empty string of at most 200 printable characters");
      }
      if (std::find(worker.queues.begin(), worker.queues.end(), q) == worker.queues.end()) {
        throw ConfigError("kinds." + name + ".queue is \"" + q +
                          "\" but this worker does not claim it: add it to worker.queues, or its jobs wait forever");
      }
    }
    if (const auto* http = std::get_if<HttpExecutor>(&kind.executor); http && http->callback) {
      check_callback_base_url(worker.callback_base_url, "kinds." + name);
    }
    if (const auto* crawl = std::get_if<CrawlExecutor>(&kind.executor); crawl && crawl->request_timeout <= Millis(0)) {
      throw ConfigError("kinds." + name + ".crawl.timeout must be greater than 0");
    }
  }
  // A schedule of a kind nothing runs would enqueue jobs that wait for nobody.
  for (const auto& [name, schedule] : schedules) {
    if (!kinds.contains(schedule.kind)) {
      throw ConfigError("schedules." + name + ".kind \"" + schedule.kind +
                        "\" is not a kind of this file: add [kinds." + schedule.kind +
                        "] (with command, url, crawl or builtin; empty for a C++ handler)");
    }
  }
}

void Config::check_programs() const {
  for (const auto& [name, kind] : kinds) {
    const auto* cmd = std::get_if<CommandExecutor>(&kind.executor);
    if (!cmd || cmd->argv.empty()) continue;
    const std::string& program = cmd->argv[0];
    std::vector<std::string> env;
    for (const auto& [k, v] : cmd->env) env.push_back(k + "=" + v);
    const std::string field = "kinds." + name + ".command";
    const std::string found = resolve_program(program, env);
    if (found.empty()) {
      throw ConfigError(field + ": program \"" + program + "\" " +
                        (program.find('/') != std::string::npos ? "does not exist or is not executable"
                                                                : "is not an executable on PATH"));
    }
    struct stat st {};
    if (::stat(found.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      throw ConfigError(field + ": program \"" + found + "\" is not a regular file");
    }
  }
}

KindSettings kind_settings(const std::string& kind, const KindConfig& config, const WorkerConfig& worker) {
  const auto* crawl = std::get_if<CrawlExecutor>(&config.executor);
  KindSettings s;
  s.kind = kind;
  s.max_retries = config.max_retries;
  s.max_running = config.max_running;
  if (crawl) s.crawl_collection = crawl->collection;
  s.timeout = config.timeout;
  s.queue = config.queue;
  // A worker's [worker] retention applies to its own kinds that set none.
  s.retain_completed = config.retain_completed ? config.retain_completed : worker.retain_completed;
  s.retain_failed = config.retain_failed ? config.retain_failed : worker.retain_failed;
  s.rate = config.rate;
  s.burst = config.burst;
  s.keyed = config.keyed;
  s.unique = config.unique;
  s.result_ttl = config.result_ttl;
  return s;
}

}  // namespace docket
