#include "page_server.hpp"

#include <time.h>

#include <httplib.h>
#include <thread>

namespace docket::test {

long long monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

PageServer::PageServer() : server_(std::make_unique<httplib::Server>()) {
  server_->new_task_queue = [] { return new httplib::ThreadPool(16); };
  auto handler = [this](const std::string& path) {
    return [this, path](const httplib::Request& req, httplib::Response& res) {
      int page = 0;
      std::string cursor;
      if (req.has_param("page")) page = std::stoi(req.get_param_value("page"));
      if (path == "/cursor") {
        cursor = req.get_param_value("cursor");
        page = cursor.empty() ? 1 : std::stoi(cursor);
      }
      serve(path, page, cursor, &res);
    };
  };
  for (const char* path : {"/items", "/cursor", "/link"}) server_->Get(path, handler(path));
  port_ = server_->bind_to_any_port("127.0.0.1");
  thread_ = new std::thread([this] { server_->listen_after_bind(); });
  while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

PageServer::~PageServer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  released_.notify_all();
  server_->stop();
  thread_->join();
  delete thread_;
}

std::string PageServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}
std::string PageServer::host() const {
  return "127.0.0.1:" + std::to_string(port_);
}

void PageServer::set_items(std::vector<Json> items, int per_page) {
  std::lock_guard lock(mutex_);
  items_ = std::move(items);
  per_page_ = per_page;
}

void PageServer::fault(int page, Fault f, int times) {
  std::lock_guard lock(mutex_);
  for (int i = 0; i < times; ++i) faults_[page].push_back(f);
}

void PageServer::fail_always(int status) {
  std::lock_guard lock(mutex_);
  fail_always_ = status;
}

void PageServer::set_latency(std::chrono::milliseconds latency) {
  std::lock_guard lock(mutex_);
  latency_ = latency;
}

void PageServer::block(int page) {
  std::lock_guard lock(mutex_);
  blocked_page_ = page;
}

void PageServer::release() {
  {
    std::lock_guard lock(mutex_);
    blocked_page_ = -1;
  }
  released_.notify_all();
}

std::vector<PageServer::Request> PageServer::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

int PageServer::count(int page) const {
  std::lock_guard lock(mutex_);
  int n = 0;
  for (const auto& r : requests_) n += r.page == page ? 1 : 0;
  return n;
}

int PageServer::max_in_flight() const {
  std::lock_guard lock(mutex_);
  return max_in_flight_;
}

void PageServer::serve(const std::string& path, int page, const std::string& /*cursor*/, void* response) {
  auto& res = *static_cast<httplib::Response*>(response);
  Request rec{path, page, 200, monotonic_ns(), 0};
  std::chrono::milliseconds latency;
  std::optional<Fault> fault;
  std::vector<Json> items;
  int pages = 0;
  {
    std::unique_lock lock(mutex_);
    max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
    latency = latency_;
    released_.wait(lock, [&] { return stopping_ || blocked_page_ != page; });
    for (int key : {page, 0}) {
      auto it = faults_.find(key);
      if (!fault && it != faults_.end() && !it->second.empty()) {
        fault = it->second.front();
        it->second.erase(it->second.begin());
      }
    }
    if (!fault && fail_always_) fault = Fault{fail_always_, std::nullopt, "", ""};
    const int from = (page - 1) * per_page_;
    for (int i = from; i >= 0 && i < from + per_page_ && i < static_cast<int>(items_.size()); ++i) {
      items.push_back(items_[i]);
    }
    pages = (static_cast<int>(items_.size()) + per_page_ - 1) / per_page_;
  }
  if (latency.count() > 0) std::this_thread::sleep_for(latency);
  if (fault && !fault->body.empty()) {
    res.status = 200;
    res.set_content(fault->body, fault->content_type.c_str());
  } else if (fault) {
    res.status = fault->status;
    if (fault->retry_after_s) res.set_header("Retry-After", std::to_string(*fault->retry_after_s));
    res.set_content("{\"error\":\"injected\"}", "application/json");
  } else {
    Json body = {{"items", items}};
    if (path == "/cursor") body["next"] = page < pages ? Json(std::to_string(page + 1)) : Json(nullptr);
    if (path == "/link" && page < pages) {
      res.set_header("Link",
                     "</link?page=" + std::to_string(page + 1) + ">; rel=\"next\", </link?page=1>; rel=\"first\"");
    }
    res.set_content(body.dump(), "application/json; charset=utf-8");
  }
  std::lock_guard lock(mutex_);
  --in_flight_;
  rec.status = res.status;
  rec.end_ns = monotonic_ns();
  requests_.push_back(rec);
}

}  // namespace docket::test
