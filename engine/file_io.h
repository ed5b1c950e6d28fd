// Whole-file reads and atomic writes for every file deblur reads or produces (models,
// checkpoints, images), with errors that name the file and the reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace deblur {

// The file's bytes. Refuses directories and files over max_bytes (checked before reading).
std::vector<uint8_t> read_file(const std::string& path, uint64_t max_bytes = UINT64_MAX);

// Writes a temporary file next to `path`, flushes it to disk, then renames it over `path`:
// readers, a crash or a full disk see either the old file or the complete new one, never a
// partial file. On failure the temporary file is removed and deblur::Error says why.
void write_file_atomically(const std::string& path, const uint8_t* data, size_t size);

}  // namespace deblur
