#include "core/text.hpp"

namespace docket {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

/// Length of the valid UTF-8 sequence starting at text[i], 0 when invalid (RFC 3629: no
/// overlongs, no surrogates, nothing above U+10FFFF).
std::size_t sequence_length(std::string_view text, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (b(k) < 0x80 || b(k) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

std::string clean_text(std::string_view text, std::size_t max_bytes, Keep keep) {
  // Over-long input is first narrowed to a window a little larger than the cap, so a 1 GB stderr
  // costs no more than the cap; the window's broken edge characters become U+FFFD and are cut below.
  constexpr std::string_view kCut = "...";
  if (max_bytes != std::string::npos && text.size() > 3 * max_bytes + 8) {
    text = keep == Keep::head ? text.substr(0, 3 * max_bytes + 8) : text.substr(text.size() - 3 * max_bytes - 8);
  }
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = sequence_length(text, i);
    if (n == 0 || text[i] == '\0') {
      out += kReplacement;
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  if (max_bytes == std::string::npos || out.size() <= max_bytes) return out;
  const std::size_t room = max_bytes > kCut.size() ? max_bytes - kCut.size() : 0;
  auto continuation = [&](std::size_t at) { return (static_cast<unsigned char>(out[at]) & 0xC0) == 0x80; };
  if (keep == Keep::head) {
    std::size_t end = room;
    while (end > 0 && continuation(end)) --end;
    return out.substr(0, end) + std::string(kCut);
  }
  std::size_t start = out.size() - room;
  while (start < out.size() && continuation(start)) ++start;
  return std::string(kCut) + out.substr(start);
}

std::string clean_json_text(std::string_view json) {
  std::string out = clean_text(json);
  constexpr std::string_view kNul = "\\u0000";
  for (std::size_t pos = 0; (pos = out.find(kNul, pos)) != std::string::npos;) {
    // An escape only when preceded by an even number of backslashes ("\\u0000" is text).
    std::size_t slashes = 0;
    while (slashes < pos && out[pos - 1 - slashes] == '\\') ++slashes;
    if (slashes % 2 == 0) out.replace(pos, kNul.size(), "\\ufffd");
    pos += kNul.size();
  }
  return out;
}

}  // namespace docket
