#pragma once
// A worker's own /metrics (and /health) endpoint: Prometheus scrapes each worker process for its
// claims, outcomes, durations and latencies (worker.metrics_listen).
#include <memory>
#include <string>
#include <thread>

#include "docket/client.hpp"
#include "docket/metrics.hpp"

namespace docket::api {

/// The schedule gauges of a scrape (docket_schedules{state}, docket_schedules_late), read with
/// `client`; empty when the database does not answer (the scrape still succeeds).
std::vector<GaugeSample> schedule_gauges(Client& client);

class MetricsServer {
 public:
  /// Binds `listen` (host:port; port 0 = any) and serves on a thread until destroyed. With a
  /// `database_url`, each scrape adds the schedule gauges (one connection, 1 s per statement).
  MetricsServer(const std::string& listen, std::shared_ptr<Metrics> metrics, const std::string& database_url = "");
  ~MetricsServer();
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace docket::api
