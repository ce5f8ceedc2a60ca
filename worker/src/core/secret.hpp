#pragma once
// Secrets: random tokens, their digests, and comparing them without leaking where they differ.
#include <cstddef>
#include <string>
#include <string_view>

namespace docket {

/// `bytes` bytes from the kernel's CSPRNG, as lowercase hex. Throws std::runtime_error when the
/// kernel refuses (never a weaker source).
std::string random_hex(std::size_t bytes);
/// SHA-256 of `text`, as lowercase hex (64 characters).
std::string sha256_hex(std::string_view text);
/// Compares without leaking where the first difference is: every byte of the longer string is
/// read whatever the input.
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace docket
