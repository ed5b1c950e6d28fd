// DEBLUR_CHECK: argument and shape checks that throw deblur::Error with a message naming what
// was wrong; used for every user-reachable failure (never assert).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace deblur {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

}  // namespace deblur

#define DEBLUR_CHECK(cond, ...)                                                \
  do {                                                                         \
    if (!(cond)) throw ::deblur::Error(::deblur::detail::concat(__VA_ARGS__)); \
  } while (0)
