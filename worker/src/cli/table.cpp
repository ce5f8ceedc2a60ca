#include "cli/table.hpp"

#include <algorithm>
#include <cmath>

#include "docket/config.hpp"

namespace docket::cli {

void Table::print(std::ostream& out) const {
  std::vector<std::size_t> width(headers_.size());
  for (std::size_t i = 0; i < headers_.size(); ++i) width[i] = headers_[i].size();
  for (const auto& row : rows_) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (std::size_t i = 0; i < headers_.size(); ++i) {
      const std::string cell = i < cells.size() ? cells[i] : "";
      text += cell;
      if (i + 1 < headers_.size()) text += std::string(width[i] - cell.size() + 2, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out << text << '\n';
  };
  line(headers_);
  for (const auto& row : rows_) line(row);
}

std::string short_time(const std::string& iso) {
  if (iso.size() < 19) return iso;
  std::string out = iso.substr(0, 19);
  if (out[10] == 'T') out[10] = ' ';
  return out;
}

std::string one_line(std::string text, std::size_t max) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  if (text.size() > max) text = text.substr(0, max - 3) + "...";
  return text;
}

std::string rate_text(std::optional<int> n, std::optional<double> period_s) {
  if (!n || !period_s) return "-";
  return std::to_string(*n) + "/" + format_duration(Millis(std::llround(*period_s * 1000)));
}

}  // namespace docket::cli
