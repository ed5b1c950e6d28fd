// A small command-line parser for the deblur subcommands: "--name value", "--name=value" and
// "--flag", with the seed's underscore spelling and the hyphenated one treated alike. Unknown
// options and bad values are errors naming the option.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace deblur::cli {

class Args {
 public:
  // `flags` are options that take no value; every other option takes one.
  Args(int argc, char** argv, int first, const std::vector<std::string>& flags);

  bool has(const std::string& name) const;
  std::string get(const std::string& name, const std::string& fallback) const;
  int64_t get_int(const std::string& name, int64_t fallback) const;
  double get_double(const std::string& name, double fallback) const;
  // Throws naming any option given that is not in `known`.
  void allow_only(const std::vector<std::string>& known) const;

 private:
  std::map<std::string, std::string> values_;
};

// An environment variable's value, or `fallback` when it is unset or empty.
std::string env_or(const char* name, const std::string& fallback);

}  // namespace deblur::cli
