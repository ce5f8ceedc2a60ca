#include "core/watch.hpp"

#include <poll.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "core/log.hpp"
#include "core/reconnect.hpp"
#include "db/session.hpp"
#include "docket/errors.hpp"

namespace docket {

namespace {

using SteadyClock = std::chrono::steady_clock;

/// Ids per read: a bigint[] literal of this many stays far below any statement size limit.
constexpr std::size_t kReadChunk = 1000;
/// With LISTEN, every waited job is still read this often: the backstop for a lost notice.
constexpr std::chrono::seconds kSweep{5};
/// A registration outlives its wait by this much: a watch that dies leaves rows that expire then.
constexpr std::chrono::minutes kRegistrationSlack{1};

/// A random (version 4) uuid: this watch's name in docket.job_waiters.
std::string random_uuid() {
  std::random_device rd;
  std::mt19937_64 rng{(static_cast<std::uint64_t>(rd()) << 32) ^ rd()};
  const std::uint64_t hi = (rng() & ~0xF000ULL) | 0x4000ULL;
  const std::uint64_t lo = (rng() & ~(0xCULL << 60)) | (0x8ULL << 60);
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08llx-%04llx-%04llx-%04llx-%012llx", static_cast<unsigned long long>(hi >> 32),
                static_cast<unsigned long long>((hi >> 16) & 0xFFFF), static_cast<unsigned long long>(hi & 0xFFFF),
                static_cast<unsigned long long>(lo >> 48), static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFULL));
  return buf;
}

}  // namespace

JobWatch::JobWatch(const std::string& url, const std::string& listen_url, std::chrono::milliseconds statement_timeout,
                   std::chrono::milliseconds poll)
    : url_(listen_url.empty() ? url : listen_url),
      id_(random_uuid()),
      listen_(!listen_url.empty() || !db::transaction_pooling()),
      statement_timeout_(statement_timeout),
      poll_(poll),
      thread_([this](const std::stop_token& stop) { run(stop); }) {}

JobWatch::~JobWatch() {
  thread_.request_stop();
  wake_.signal();
  if (thread_.joinable()) thread_.join();
  std::multimap<std::int64_t, Waiter> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(waiters_);
  }
  const auto error = std::make_exception_ptr(Unavailable("shutting down: the wait was not answered"));
  for (auto& [id, w] : left) w.done(nullptr, error);
}

void JobWatch::wait(std::int64_t id, std::chrono::milliseconds timeout, WaitDone done) {
  {
    std::lock_guard lock(mutex_);
    if (waiters_.size() >= kMaxWaiters) {
      throw Unavailable("too many waits in progress (" + std::to_string(kMaxWaiters) + "); retry shortly");
    }
    waiters_.emplace(id, Waiter{SteadyClock::now() + timeout, std::move(done)});
    fresh_.insert(id);
  }
  wake_.signal();
}

std::size_t JobWatch::waiting() const {
  std::lock_guard lock(mutex_);
  return waiters_.size();
}

void JobWatch::run(const std::stop_token& stop) {
  db::Session session(url_, "docket-waiter", db::Session::Plans::custom,
                      listen_ ? db::Session::Route::direct : db::Session::Route::process_default);
  session.set_timeouts(statement_timeout_, std::chrono::milliseconds(0));
  if (listen_) session.listen("docket_finished");
  const auto sweep_every = listen_ ? std::chrono::duration_cast<std::chrono::milliseconds>(kSweep) : poll_;
  ReconnectDelay delay;
  auto retry_at = SteadyClock::time_point::min();
  auto next_sweep = SteadyClock::now() + sweep_every;
  bool read_all = false;  // a reconnect or a failed read: every waited job is read again
  // With LISTEN: ids to register before the next read (all of them after a reconnect or a failed
  // round: the registrations may be gone with a crashed server) and ids nobody waits for any more.
  std::set<std::int64_t> to_register;
  std::set<std::int64_t> to_drop;

  while (!stop.stop_requested()) {
    // Anything else that escapes a round (a libpq error not translated yet, a malformed row)
    // must not end the thread, which would terminate the process: the round is retried from a
    // fresh session, and every waited job is read again.
    try {
      auto now = SteadyClock::now();
      std::set<std::int64_t> check;
      if (!session.connected() && now >= retry_at) {
        try {
          session.connect();
          read_all = true;  // whatever finished while there was no session
        } catch (const Error& e) {
          const auto wait = delay.next();
          log::warn("db.unavailable", {{"component", "waiter"}, {"error", e.what()}, {"retry_in_ms", wait.count()}});
          retry_at = now + wait;
        }
      }
      if (session.connected() && listen_) {
        try {
          for (const auto& n : session.take_notifications()) {
            if (n.channel != "docket_finished") {
              read_all = true;  // docket_reconnect: notices may have been missed meanwhile
              continue;
            }
            try {
              check.insert(std::stoll(n.payload));
            } catch (...) {
              read_all = true;  // not ours to judge: read everything rather than miss a finish
            }
          }
        } catch (const Unavailable&) {
          read_all = true;
        }
      }
      std::vector<std::pair<std::int64_t, Waiter>> settled_missing;
      {
        std::lock_guard lock(mutex_);
        if (read_all) {
          for (const auto& [id, w] : waiters_) to_register.insert(id);
        }
        to_register.insert(fresh_.begin(), fresh_.end());
        if (read_all || now >= next_sweep) {
          for (const auto& [id, w] : waiters_) check.insert(id);
        } else {
          check.insert(fresh_.begin(), fresh_.end());
          for (const auto& [id, w] : waiters_) {
            if (w.deadline <= now) check.insert(id);
          }
        }
        fresh_.clear();
        // Only ids someone waits for are read: a notice for a job nobody awaits costs nothing.
        std::erase_if(check, [&](std::int64_t id) { return !waiters_.contains(id); });
        std::erase_if(to_register, [&](std::int64_t id) { return !waiters_.contains(id); });
      }
      if (listen_ && session.connected() && (!to_register.empty() || !to_drop.empty())) {
        // Registered before the read below: a finish that commits after the read is notified.
        // (One committing while this registration does is found by the sweep.)
        auto hold = std::chrono::milliseconds(0);
        {
          std::lock_guard lock(mutex_);
          for (const auto& [id, w] : waiters_) {
            hold = std::max(hold, std::chrono::duration_cast<std::chrono::milliseconds>(w.deadline - now));
          }
        }
        if (to_drop.size() > kMaxWaiters) to_drop.clear();  // past the call's limit: their rows expire
        try {
          session.watch_jobs(id_, {to_register.begin(), to_register.end()}, {to_drop.begin(), to_drop.end()},
                             hold + kRegistrationSlack);
          to_register.clear();
          to_drop.clear();
        } catch (const Error& e) {
          log::warn("wait.register_failed", {{"error", e.what()}});  // the sweep still answers
        }
      }
      if (now >= next_sweep) next_sweep = now + sweep_every;

      if (!check.empty() && session.connected()) {
        std::map<std::int64_t, std::shared_ptr<const JobRecord>> found;
        std::exception_ptr error;
        try {
          std::vector<std::int64_t> ids(check.begin(), check.end());
          for (std::size_t i = 0; i < ids.size(); i += kReadChunk) {
            const std::vector<std::int64_t> chunk(ids.begin() + i, ids.begin() + std::min(ids.size(), i + kReadChunk));
            for (auto& job : session.jobs_by_id(chunk)) {
              const auto job_id = job.id;
              found.emplace(job_id, std::make_shared<const JobRecord>(std::move(job)));
            }
          }
          read_all = false;
          delay.reset();
        } catch (const Error& e) {
          error = std::current_exception();
          read_all = true;
          const auto wait = delay.next();
          log::warn("wait.read_failed", {{"error", e.what()}, {"retry_in_ms", wait.count()}});
          retry_at = SteadyClock::now() + wait;
          if (session.connected()) session.disconnect();  // read again from a fresh session
        }
        now = SteadyClock::now();
        std::vector<std::pair<Waiter, std::shared_ptr<const JobRecord>>> answers;
        std::vector<Waiter> failures;
        {
          std::lock_guard lock(mutex_);
          for (const auto id : check) {
            const auto it = found.find(id);
            auto [first, last] = waiters_.equal_range(id);
            while (first != last) {
              const bool expired = first->second.deadline <= now;
              if (error) {
                if (!expired) {
                  ++first;
                  continue;
                }
                failures.push_back(std::move(first->second));
              } else if (it == found.end()) {
                answers.emplace_back(std::move(first->second), nullptr);
              } else if (expired || is_finished(it->second->state)) {
                answers.emplace_back(std::move(first->second), it->second);
              } else {
                ++first;
                continue;
              }
              first = waiters_.erase(first);
            }
            if (listen_ && !waiters_.contains(id)) to_drop.insert(id);
          }
        }
        for (auto& [w, job] : answers) w.done(std::move(job), nullptr);
        for (auto& w : failures) w.done(nullptr, error);
      } else if (!session.connected()) {
        // No database: waits past their deadline end with the reason rather than hang.
        std::vector<Waiter> failures;
        {
          std::lock_guard lock(mutex_);
          for (auto it = waiters_.begin(); it != waiters_.end();) {
            if (it->second.deadline <= now) {
              if (listen_) to_drop.insert(it->first);
              failures.push_back(std::move(it->second));
              it = waiters_.erase(it);
            } else {
              ++it;
            }
          }
        }
        const auto error = std::make_exception_ptr(Unavailable("the database cannot be reached to read the job"));
        for (auto& w : failures) w.done(nullptr, error);
        read_all = true;
      }

      // Sleep until a notice, a new waiter, the next deadline, the sweep or the reconnect.
      now = SteadyClock::now();
      auto until = next_sweep;
      {
        std::lock_guard lock(mutex_);
        if (!fresh_.empty()) until = now;
        for (const auto& [id, w] : waiters_) until = std::min(until, w.deadline);
      }
      if (!session.connected()) until = std::min(until, std::max(retry_at, now));
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
      const int timeout_ms = static_cast<int>(std::clamp<long long>(ms + 1, 0, 60'000));
      const int sock = session.connected() && listen_ ? session.socket() : -1;
      pollfd fds[2] = {{wake_.fd(), POLLIN, 0}, {sock, POLLIN, 0}};
      ::poll(fds, sock >= 0 ? 2 : 1, timeout_ms);
      if (fds[0].revents & POLLIN) wake_.drain();
    } catch (const std::exception& e) {
      const auto wait = delay.next();
      log::warn("wait.failed", {{"error", e.what()}, {"retry_in_ms", wait.count()}});
      read_all = true;
      retry_at = SteadyClock::now() + wait;
      try {
        if (session.connected()) session.disconnect();
      } catch (...) {
      }
      std::this_thread::sleep_for(std::min<SteadyClock::duration>(wait, std::chrono::milliseconds(200)));
    }
  }
}

}  // namespace docket
