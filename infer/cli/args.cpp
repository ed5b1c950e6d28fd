// Command-line parsing for the deblur subcommands.
#include "infer/cli/args.h"

#include <algorithm>
#include <cstdlib>

#include "engine/check.h"

namespace deblur::cli {

namespace {
// "--learning-rate" and "--learning_rate" are one option.
std::string canonical(std::string name) {
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}
}  // namespace

Args::Args(int argc, char** argv, int first, const std::vector<std::string>& flags) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    DEBLUR_CHECK(arg.rfind("--", 0) == 0 && arg.size() > 2, "unexpected argument '", arg,
                 "' (options start with --)");
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    name = canonical(name);
    const bool is_flag = std::find(flags.begin(), flags.end(), name) != flags.end();
    if (!is_flag && !inline_value) {
      DEBLUR_CHECK(i + 1 < argc, "option --", name, " needs a value");
      value = argv[++i];
    }
    values_[name] = value;
  }
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

bool Args::has(const std::string& name) const {
  return values_.count(canonical(name)) > 0;
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(canonical(name));
  return it == values_.end() ? fallback : it->second;
}

int64_t Args::get_int(const std::string& name, int64_t fallback) const {
  const std::string text = get(name, "");
  if (text.empty() && !has(name)) return fallback;
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  DEBLUR_CHECK(used == text.size() && !text.empty(), "option --", canonical(name),
               " needs an integer, got '", text, "'");
  return value;
}

double Args::get_double(const std::string& name, double fallback) const {
  const std::string text = get(name, "");
  if (text.empty() && !has(name)) return fallback;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  DEBLUR_CHECK(!text.empty() && end && *end == '\0', "option --", canonical(name),
               " needs a number, got '", text, "'");
  return value;
}

void Args::allow_only(const std::vector<std::string>& known) const {
  for (const auto& [name, value] : values_)
    DEBLUR_CHECK(std::find(known.begin(), known.end(), name) != known.end(), "unknown option --",
                 name, " (see --help)");
}

}  // namespace deblur::cli
