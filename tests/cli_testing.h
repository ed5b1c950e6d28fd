// Running the built deblur binary from tests: exit code, stdout and stderr, and a scratch
// folder per test that is removed afterwards.
#pragma once

#include <filesystem>
#include <string>

namespace deblur::testing {

struct CliRun {
  int exit_code = -1;  // -1 when the process did not exit normally
  std::string out, err;
};

// Runs DEBLUR_CLI (the binary CMake built) with `arguments`, which the shell splits: quote paths
// with shell_quoted(). `launcher`, when given, is a command line that runs it (e.g. "timeout
// --preserve-status -s INT 5" to interrupt it).
CliRun run_cli(const std::string& arguments, const std::string& launcher = "");
std::string shell_quoted(const std::filesystem::path& path);

// A fresh empty folder under the system temp directory, removed with everything in it when the
// object goes away.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace deblur::testing
