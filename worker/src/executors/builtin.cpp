#include <time.h>

#include <thread>

#include "docket/errors.hpp"
#include "executors/executors.hpp"

namespace docket {

const std::vector<std::string>& builtin_names() {
  static const std::vector<std::string> names = {"echo", "sleep", "fail", "noop", "stamp"};
  return names;
}

Handler builtin_handler(const std::string& name) {
  if (name == "echo") {
    // Completes with its args as the result.
    return [](JobContext& ctx) { return Outcome::complete(ctx.args()); };
  }
  if (name == "noop") {
    return [](JobContext&) { return Outcome::complete(); };
  }
  if (name == "stamp") {
    // Completes with when the handler started (CLOCK_MONOTONIC ns: comparable across processes
    // on one host): the latency benchmark's probe.
    return [](JobContext&) {
      timespec ts{};
      ::clock_gettime(CLOCK_MONOTONIC, &ts);
      return Outcome::complete(Json{{"started_ns", static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec}});
    };
  }
  if (name == "sleep") {
    // Sleeps args.ms milliseconds (default 1000), stopping early when asked to.
    return [](JobContext& ctx) {
      const auto ms = ctx.args().value("ms", 1000);
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(0, ms));
      while (std::chrono::steady_clock::now() < until) {
        if (ctx.stop_requested()) return Outcome::retry("interrupted");
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
            std::chrono::milliseconds(20), until - std::chrono::steady_clock::now()));
      }
      return Outcome::complete(Json{{"slept_ms", ms}});
    };
  }
  if (name == "fail") {
    // Always fails: shows retries, backoff and finally `failed`.
    return [](JobContext& ctx) {
      return Outcome::retry("demo.fail always fails (attempt " + std::to_string(ctx.job().attempt) + " of " +
                            std::to_string(ctx.job().max_retries + 1) + ")");
    };
  }
  throw ConfigError("unknown builtin \"" + name + "\"; known: echo, sleep, fail, noop, stamp");
}

Handler make_executor_handler(const KindConfig& kind) {
  return std::visit(
      [&](const auto& ex) -> Handler {
        using T = std::decay_t<decltype(ex)>;
        if constexpr (std::is_same_v<T, CommandExecutor>) {
          return command_handler(ex);
        } else if constexpr (std::is_same_v<T, HttpExecutor>) {
          return http_handler(ex, kind.timeout);
        } else if constexpr (std::is_same_v<T, BuiltinExecutor>) {
          return builtin_handler(ex.name);
        } else if constexpr (std::is_same_v<T, CrawlExecutor>) {
          throw ConfigError("kind " + kind.kind + ": crawl kinds are registered by the worker (needs the database)");
        } else {
          throw ConfigError("kind " + kind.kind +
                            " has no executor: give it command, url, crawl or builtin, or register a C++ handler");
        }
      },
      kind.executor);
}

}  // namespace docket
