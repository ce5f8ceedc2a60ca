#pragma once
// A worker's own /metrics (and /health) endpoint: Prometheus scrapes each worker process for its
// claims, outcomes, durations and latencies (worker.metrics_listen).
#include <memory>
#include <string>
#include <thread>

#include "docket/metrics.hpp"

namespace docket::api {

class MetricsServer {
 public:
  /// Binds `listen` (host:port; port 0 = any) and serves on a thread until destroyed.
  MetricsServer(const std::string& listen, std::shared_ptr<Metrics> metrics);
  ~MetricsServer();
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace docket::api
