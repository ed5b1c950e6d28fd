// Safetensors IO: read F32/F16/BF16 tensors (converted to float32) and write F32 or F16, with
// every format rule checked on read so a malformed or truncated file throws deblur::Error naming
// the file and the problem, and never reads out of bounds.
// Format: https://github.com/huggingface/safetensors (u64 little-endian header length, JSON
// header, then one contiguous data section).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace deblur {

enum class DType { F32, F16, BF16 };
const char* dtype_name(DType dtype);  // "F32", "F16", "BF16"

struct TensorRecord {
  std::string name;
  std::vector<int64_t> shape;  // as in the file (any rank, including 0)
  std::vector<float> values;   // row-major, converted to float32
  DType dtype = DType::F32;    // the dtype in the file (read) or to write
};

struct SafetensorsFile {
  std::vector<TensorRecord> tensors;                        // in order of data offset
  std::map<std::string, std::string> metadata;              // "__metadata__" (string to string)
  const TensorRecord* find(const std::string& name) const;  // nullptr if absent
};

SafetensorsFile read_safetensors(const std::string& path);
// Parses an in-memory file; `source` names it in error messages.
SafetensorsFile parse_safetensors(const uint8_t* bytes, size_t size, const std::string& source);

// Writes F32 or F16 (per record's dtype; BF16 write is an error) atomically: to
// path + ".tmp-<pid>" then rename, so a crash never leaves a partial file at `path`.
void write_safetensors(const std::string& path, const std::vector<TensorRecord>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// "[32, 3, 3, 3]": a file shape as error messages print it.
std::string shape_string(const std::vector<int64_t>& shape);

// Scalar conversions (exposed for tests and for other half-precision users).
float f16_to_float(uint16_t bits);   // exact, including subnormals, inf and NaN
float bf16_to_float(uint16_t bits);  // bits << 16
uint16_t float_to_f16(float value);  // round to nearest even; overflow to inf; NaN stays NaN

}  // namespace deblur
