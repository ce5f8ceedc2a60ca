// The C++ handler example of the README, built by CMake so it stays true.
#include <docket/worker.hpp>

#include <cstdlib>

int main() {
  docket::WorkerConfig config;
  config.queues = {"default"};
  config.concurrency = 8;
  const char* url = std::getenv("DATABASE_URL");
  docket::Worker worker(url ? url : "", config);
  docket::KindConfig options;
  options.max_retries = 5;
  options.max_running = 3;  // seeds the global quota
  worker.handle("report", [](docket::JobContext& ctx) {
    if (ctx.args().value("month", "").empty()) return docket::Outcome::fail("no month");  // permanent
    for (int page = 0; page < 10 && !ctx.stop_requested(); ++page) {                  // cooperative stop
      ctx.progress({{"page", page}});
    }
    return docket::Outcome::complete({{"rows", 1234}});
  }, options);
  worker.run_until_signal();  // SIGTERM/SIGINT drain gracefully; a second signal exits at once
}
