#pragma once
// A paginated JSON source for crawl tests, with fault injection. It records every request (page,
// start and end by CLOCK_MONOTONIC) and the most requests it ever had in flight at once.
//   /items?page=N     {"items": [...]} (empty past the end)         crawl.url = ".../items?page={page}"
//   /cursor?cursor=C  {"items": [...], "next": "C'" | null}         crawl.next = "/next"
//   /link?page=N      {"items": [...]} + Link: <...>; rel="next"     crawl.next = "link"
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace httplib {
class Server;
}

namespace docket::test {

class PageServer {
 public:
  using Json = nlohmann::json;
  struct Request {
    std::string path;
    int page = 0;
    int status = 200;
    long long start_ns = 0;
    long long end_ns = 0;
  };
  struct Fault {
    int status = 503;
    std::optional<int> retry_after_s;
    std::string content_type;  ///< set with body: serve this instead of the page
    std::string body;
  };

  PageServer();
  ~PageServer();
  /// "http://127.0.0.1:PORT" + path
  std::string url(const std::string& path) const;
  std::string host() const;

  /// The source's items (each an object with an "id"), `per_page` per page.
  void set_items(std::vector<Json> items, int per_page);
  /// Serve `fault` for the next `times` requests of `page` (0: of any page).
  void fault(int page, Fault fault, int times = 1);
  /// Every request fails with `status` from now on (0 to stop).
  void fail_always(int status);
  void set_latency(std::chrono::milliseconds latency);
  /// Requests of `page` wait until release() (or the server stops).
  void block(int page);
  void release();

  std::vector<Request> requests() const;
  int count(int page) const;
  int max_in_flight() const;

 private:
  void serve(const std::string& path, int page, const std::string& cursor, void* response);

  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread* thread_ = nullptr;
  mutable std::mutex mutex_;
  std::condition_variable released_;
  std::vector<Json> items_;
  int per_page_ = 10;
  std::map<int, std::vector<Fault>> faults_;
  int fail_always_ = 0;
  std::chrono::milliseconds latency_{0};
  int blocked_page_ = -1;
  bool stopping_ = false;
  std::vector<Request> requests_;
  int in_flight_ = 0;
  int max_in_flight_ = 0;
};

/// CLOCK_MONOTONIC in nanoseconds (comparable across processes on this host).
long long monotonic_ns();

}  // namespace docket::test
