#include "metrics_server.hpp"

#include <httplib.h>

#include "docket/errors.hpp"
#include "server.hpp"

namespace docket::api {

std::vector<GaugeSample> schedule_gauges(Client& client) {
  try {
    const ScheduleCounts n = client.schedule_counts();
    const char* help = "Schedules by state (docket.schedules.enabled)";
    return {{"docket_schedules", help, {{"state", "enabled"}}, double(n.enabled)},
            {"docket_schedules", help, {{"state", "paused"}}, double(n.paused)},
            {"docket_schedules_late",
             "Enabled schedules whose job is due more than 5s ago and not enqueued (no worker ticks them?)",
             {},
             double(n.late)}};
  } catch (const std::exception&) {
    return {};
  }
}

struct MetricsServer::Impl {
  httplib::Server server;
  std::shared_ptr<Metrics> metrics;
  std::unique_ptr<Client> client;  ///< for the schedule gauges; null without a database URL
  int port = -1;
  std::thread thread;
};

MetricsServer::MetricsServer(const std::string& listen, std::shared_ptr<Metrics> metrics,
                             const std::string& database_url)
    : impl_(std::make_unique<Impl>()) {
  impl_->metrics = std::move(metrics);
  if (!database_url.empty()) {
    impl_->client = std::make_unique<Client>(
        database_url, ClientOptions{1, "docket-metrics", false, std::chrono::seconds(1), std::chrono::seconds(1)});
  }
  auto& s = impl_->server;
  s.new_task_queue = [] { return new httplib::ThreadPool(2); };
  s.set_tcp_nodelay(true);
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        impl_->metrics->render(impl_->client ? schedule_gauges(*impl_->client) : std::vector<GaugeSample>{}),
        "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  const auto [host, port] = parse_listen(listen);
  if (!is_loopback(host)) {
    // Metrics carry kind and queue names only, but keep the same rule as the API.
    throw ConfigError("worker.metrics_listen must be a loopback address (put a proxy in front), got " + host);
  }
  impl_->port = port == 0 ? s.bind_to_any_port(host) : (s.bind_to_port(host, port) ? port : -1);
  if (impl_->port <= 0) throw ConfigError("cannot listen on " + listen + " for worker metrics");
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
}

MetricsServer::~MetricsServer() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int MetricsServer::port() const {
  return impl_->port;
}

}  // namespace docket::api
