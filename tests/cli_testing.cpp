// Running the deblur binary from tests (see cli_testing.h).
#include "tests/cli_testing.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

#ifndef DEBLUR_CLI
#error "DEBLUR_CLI must be defined (CMake sets it to the deblur binary)"
#endif

namespace deblur::testing {

namespace fs = std::filesystem;

namespace {
std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}
}  // namespace

std::string shell_quoted(const fs::path& path) {
  std::string text = "'";
  for (char c : path.string()) text += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return text + "'";
}

CliRun run_cli(const std::string& arguments, const std::string& launcher) {
  ScratchDir capture;
  const std::string command = launcher + " " + shell_quoted(DEBLUR_CLI) + " " + arguments + " >" +
                              shell_quoted(capture / "out") + " 2>" + shell_quoted(capture / "err") +
                              " </dev/null";
  const int status = std::system(command.c_str());
  CliRun run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.out = slurp(capture / "out");
  run.err = slurp(capture / "err");
  return run;
}

ScratchDir::ScratchDir() {
  static std::atomic<int> counter{0};
  path_ = fs::temp_directory_path() /
          ("deblur_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::remove_all(path_);
  fs::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

}  // namespace deblur::testing
