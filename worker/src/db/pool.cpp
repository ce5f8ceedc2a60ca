#include "db/pool.hpp"

namespace docket::db {

Pool::Pool(const std::string& url, int size, const std::string& application_name,
           std::chrono::milliseconds statement_timeout, std::chrono::milliseconds lock_timeout)
    : size_(size < 1 ? 1 : size) {
  for (int i = 0; i < size_; ++i) {
    idle_.push_back(std::make_unique<Session>(url, application_name));
    idle_.back()->set_timeouts(statement_timeout, lock_timeout);
  }
}

Pool::Lease::~Lease() {
  if (session_) pool_->give_back(std::move(session_));
}

Pool::Lease Pool::acquire() {
  std::unique_lock lock(mutex_);
  available_.wait(lock, [&] { return !idle_.empty(); });
  auto session = std::move(idle_.back());
  idle_.pop_back();
  return Lease(*this, std::move(session));
}

void Pool::give_back(std::unique_ptr<Session> session) {
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(session));
  }
  available_.notify_one();
}

}  // namespace docket::db
