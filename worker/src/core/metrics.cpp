#include "docket/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <mutex>

namespace docket {

namespace {
// Seconds: sub-millisecond no-ops up to jobs of several minutes.
const prometheus::Histogram::BucketBoundaries kJobBuckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                             1,     2.5,   5,    10,    30,   60,  300,  1800};
const prometheus::Histogram::BucketBoundaries kApiBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                             0.05,   0.1,   0.25,   0.5,   1,    2.5};
}  // namespace

struct Metrics::Impl {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& claimed = prometheus::BuildCounter()
                                                         .Name("docket_jobs_claimed_total")
                                                         .Help("Jobs claimed by this process")
                                                         .Register(registry);
  prometheus::Family<prometheus::Counter>& finished =
      prometheus::BuildCounter()
          .Name("docket_jobs_finished_total")
          .Help("Outcomes written by this process, by the state the job reached (stale: refused by the fence)")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& stuck =
      prometheus::BuildGauge()
          .Name("docket_worker_stuck_jobs")
          .Help(
              "Runs of this process asked to stop (timeout, cancel, lost lease, shutdown) whose handler has not "
              "returned worker.stuck_after later: each keeps a thread and a slot (a timed-out or cancelled one's "
              "outcome was written without it)")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& duration = prometheus::BuildHistogram()
                                                            .Name("docket_job_duration_seconds")
                                                            .Help("Time a job's handler ran, per attempt")
                                                            .Register(registry);
  prometheus::Family<prometheus::Histogram>& latency =
      prometheus::BuildHistogram()
          .Name("docket_job_queue_latency_seconds")
          .Help("Time from when a job could run (run_at) to when it was claimed")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& wait =
      prometheus::BuildHistogram()
          .Name("docket_job_wait_seconds")
          .Help("Time from when a job could run (run_at) to when it was claimed, per kind")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& schedule_lateness =
      prometheus::BuildHistogram()
          .Name("docket_schedule_lateness_seconds")
          .Help("Time from a schedule slot's time (with its spread offset) to its job's enqueue, by this process")
          .Register(registry);
  prometheus::Histogram* schedule_lateness_all = nullptr;
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter().Name("docket_api_requests_total").Help("HTTP requests served").Register(registry);
  prometheus::Family<prometheus::Histogram>& request_seconds = prometheus::BuildHistogram()
                                                                   .Name("docket_api_request_duration_seconds")
                                                                   .Help("HTTP request latency")
                                                                   .Register(registry);
  // Family::Add looks labels up under its own lock; cache the handles to keep the hot path cheap.
  std::mutex mutex;
  std::map<std::string, prometheus::Counter*> claimed_by_kind;
  std::map<std::pair<std::string, std::string>, prometheus::Counter*> finished_by;
  std::map<std::string, prometheus::Gauge*> stuck_by_kind;
  std::map<std::string, prometheus::Histogram*> duration_by_kind;
  std::map<std::string, prometheus::Histogram*> latency_by_queue;
  std::map<std::string, prometheus::Histogram*> wait_by_kind;
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

void Metrics::job_claimed(const std::string& kind, const std::string& queue, double queue_latency_s) {
  std::lock_guard lock(impl_->mutex);
  auto& c = impl_->claimed_by_kind[kind];
  if (!c) c = &impl_->claimed.Add({{"kind", kind}});
  c->Increment();
  auto& h = impl_->latency_by_queue[queue];
  if (!h) h = &impl_->latency.Add({{"queue", queue}}, kJobBuckets);
  h->Observe(queue_latency_s < 0 ? 0 : queue_latency_s);
  auto& w = impl_->wait_by_kind[kind];
  if (!w) w = &impl_->wait.Add({{"kind", kind}}, kJobBuckets);
  w->Observe(queue_latency_s < 0 ? 0 : queue_latency_s);
}

void Metrics::job_finished(const std::string& kind, const std::string& state, double duration_s) {
  std::lock_guard lock(impl_->mutex);
  auto& c = impl_->finished_by[{kind, state}];
  if (!c) c = &impl_->finished.Add({{"kind", kind}, {"state", state}});
  c->Increment();
  if (state == "stale" || state == "available") return;
  auto& h = impl_->duration_by_kind[kind];
  if (!h) h = &impl_->duration.Add({{"kind", kind}}, kJobBuckets);
  h->Observe(duration_s);
}

void Metrics::job_stuck(const std::string& kind, int delta) {
  std::lock_guard lock(impl_->mutex);
  auto& g = impl_->stuck_by_kind[kind];
  if (!g) g = &impl_->stuck.Add({{"kind", kind}});
  g->Increment(delta);
}

void Metrics::schedule_enqueued(double lateness_s) {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->schedule_lateness_all) impl_->schedule_lateness_all = &impl_->schedule_lateness.Add({}, kJobBuckets);
  impl_->schedule_lateness_all->Observe(lateness_s < 0 ? 0 : lateness_s);
}

void Metrics::api_request(const std::string& route, const std::string& method, int status, double seconds) {
  impl_->requests.Add({{"route", route}, {"method", method}, {"status", std::to_string(status)}}).Increment();
  impl_->request_seconds.Add({{"route", route}, {"method", method}}, kApiBuckets).Observe(seconds);
}

std::string Metrics::render(const std::vector<GaugeSample>& gauges) const {
  auto families = impl_->registry.Collect();
  // Gauges read from the database: a fresh registry per scrape, so series that vanished do not linger.
  prometheus::Registry scrape;
  std::map<std::string, prometheus::Family<prometheus::Gauge>*> by_name;
  for (const auto& g : gauges) {
    auto& family = by_name[g.name];
    if (!family) family = &prometheus::BuildGauge().Name(g.name).Help(g.help).Register(scrape);
    family->Add(g.labels).Set(g.value);
  }
  auto extra = scrape.Collect();
  families.insert(families.end(), extra.begin(), extra.end());
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace docket
