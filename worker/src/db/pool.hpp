#pragma once
// A fixed set of Sessions leased exclusively to one thread at a time.
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "db/session.hpp"

namespace docket::db {

class Pool {
 public:
  /// `statement_timeout` and `lock_timeout` (0: none) apply to every session of the pool.
  Pool(const std::string& url, int size, const std::string& application_name,
       std::chrono::milliseconds statement_timeout = {}, std::chrono::milliseconds lock_timeout = {});

  /// An exclusive lease, returned to the pool when destroyed.
  class Lease {
   public:
    Lease(Pool& pool, std::unique_ptr<Session> session) : pool_(&pool), session_(std::move(session)) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = default;
    ~Lease();
    Session* operator->() { return session_.get(); }
    Session& operator*() { return *session_; }

   private:
    Pool* pool_;
    std::unique_ptr<Session> session_;
  };

  /// Waits for a free session.
  Lease acquire();
  int size() const { return size_; }

 private:
  void give_back(std::unique_ptr<Session> session);

  int size_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Session>> idle_;
};

}  // namespace docket::db
