#pragma once
// An eventfd a thread can poll() on next to a socket: other threads signal() it.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace docket {

class Wake {
 public:
  Wake() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Wake() {
    if (fd_ >= 0) ::close(fd_);
  }
  Wake(const Wake&) = delete;
  Wake& operator=(const Wake&) = delete;

  void signal() const {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
  }
  /// Clears pending signals; true if there were any.
  bool drain() const {
    std::uint64_t value = 0;
    return ::read(fd_, &value, sizeof value) == sizeof value && value > 0;
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

}  // namespace docket
