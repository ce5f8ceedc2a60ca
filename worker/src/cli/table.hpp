#pragma once
// Column-aligned tables for humans (scripts use --json).
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace docket::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream& out) const;
  bool empty() const { return rows_.empty(); }

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

/// "2026-11-21T05:32:19.2759+00:00" -> "2026-11-21 05:32:19"
std::string short_time(const std::string& iso);
/// A rate limit as "N/PERIOD" ("20/1s", "100/1m"), or "-" without one.
std::string rate_text(std::optional<int> n, std::optional<double> period_s);
/// One line, at most `max` characters.
std::string one_line(std::string text, std::size_t max = 80);

}  // namespace docket::cli
