// Whole-file reads and atomic writes (see file_io.h).
#include "engine/file_io.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "engine/check.h"

namespace deblur {

namespace {
std::string errno_text() {
  return std::strerror(errno);
}
}  // namespace

std::vector<uint8_t> read_file(const std::string& path, uint64_t max_bytes) {
  std::FILE* stream = std::fopen(path.c_str(), "rb");
  DEBLUR_CHECK(stream, "cannot open '", path, "' for reading: ", errno_text());
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(stream, std::fclose);
  struct stat status {};
  DEBLUR_CHECK(::fstat(::fileno(stream), &status) == 0, "cannot read '", path, "': ", errno_text());
  DEBLUR_CHECK(!S_ISDIR(status.st_mode), "cannot read '", path, "': it is a directory");
  DEBLUR_CHECK(static_cast<uint64_t>(status.st_size) <= max_bytes, path, ": file too large (",
               status.st_size, " bytes; at most ", max_bytes, ")");
  std::vector<uint8_t> bytes(static_cast<size_t>(status.st_size));
  const size_t got = std::fread(bytes.data(), 1, bytes.size(), stream);
  DEBLUR_CHECK(!std::ferror(stream), "cannot read '", path, "': ", errno_text());
  // A file that shrank while being read would otherwise be parsed with zeros at its end.
  DEBLUR_CHECK(got == bytes.size(), "cannot read '", path, "': got ", got, " of ", bytes.size(),
               " bytes (the file changed while being read)");
  return bytes;
}

void write_file_atomically(const std::string& path, const uint8_t* data, size_t size) {
  const std::string temp = path + ".tmp-" + std::to_string(::getpid());
  std::FILE* stream = std::fopen(temp.c_str(), "wb");
  DEBLUR_CHECK(stream, "cannot write '", path, "': cannot create '", temp, "': ", errno_text());
  bool ok = std::fwrite(data, 1, size, stream) == size;
  ok = ok && std::fflush(stream) == 0 && ::fsync(::fileno(stream)) == 0;
  std::string reason = ok ? "" : errno_text();
  if (std::fclose(stream) != 0 && ok) {
    ok = false;
    reason = errno_text();
  }
  if (ok && std::rename(temp.c_str(), path.c_str()) != 0) {
    ok = false;
    reason = "rename from '" + temp + "' failed: " + errno_text();
  }
  if (!ok) {
    std::remove(temp.c_str());
    throw Error(detail::concat("cannot write '", path, "': ", reason));
  }
}

}  // namespace deblur
