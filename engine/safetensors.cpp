// Safetensors read/write: header parsing and validation, dtype conversions, atomic writes.
#include "engine/safetensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "engine/check.h"
#include "engine/file_io.h"

namespace deblur {

// The data section is copied byte for byte into floats and u16s.
static_assert(std::endian::native == std::endian::little,
              "safetensors IO assumes a little-endian host");

namespace {

// Larger headers are refused before anything is allocated by their stated size; real headers
// are a few hundred bytes per tensor, and upstream safetensors uses the same 100 MB cap.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr size_t kHeaderLengthBytes = 8;
constexpr char kMetadataKey[] = "__metadata__";

size_t dtype_bytes(DType dtype) {
  return dtype == DType::F32 ? 4 : 2;
}

// Product of dims, or false when it overflows u64 (a zero dim makes it 0 regardless).
bool checked_numel(const std::vector<uint64_t>& dims, uint64_t& numel) {
  numel = 1;
  if (std::find(dims.begin(), dims.end(), 0u) != dims.end()) {
    numel = 0;
    return true;
  }
  for (uint64_t d : dims) {
    if (numel > std::numeric_limits<uint64_t>::max() / d) return false;
    numel *= d;
  }
  return true;
}

// Reads a JSON array of non-negative integers; false if `value` is anything else.
bool read_unsigned_array(const nlohmann::json& value, std::vector<uint64_t>& out) {
  if (!value.is_array()) return false;
  out.clear();
  for (const auto& item : value) {
    if (!item.is_number_unsigned()) return false;
    out.push_back(item.get<uint64_t>());
  }
  return true;
}

// One header entry after validation, before its bytes are converted.
struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t numel;
  uint64_t begin, end;
};

Entry parse_entry(const std::string& source, const std::string& name, const nlohmann::json& info) {
  const std::string where = source + ": tensor '" + name + "'";
  DEBLUR_CHECK(info.is_object(), where, " header entry is not a JSON object");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    DEBLUR_CHECK(info.contains(field), where, " is missing the field \"", field, "\"");

  const auto& dtype_json = info.at("dtype");
  DEBLUR_CHECK(dtype_json.is_string(), where, " has a dtype that is not a string");
  const auto& dtype_text = dtype_json.get_ref<const std::string&>();
  Entry entry{name, DType::F32, {}, 0, 0, 0};
  if (dtype_text == "F32") {
    entry.dtype = DType::F32;
  } else if (dtype_text == "F16") {
    entry.dtype = DType::F16;
  } else if (dtype_text == "BF16") {
    entry.dtype = DType::BF16;
  } else {
    throw Error(detail::concat(where, " has unsupported dtype \"", dtype_text,
                               "\" (supported: F32, F16, BF16)"));
  }

  std::vector<uint64_t> dims;
  DEBLUR_CHECK(read_unsigned_array(info.at("shape"), dims), where,
               " has a shape that is not an array of non-negative integers");
  for (uint64_t d : dims) {
    DEBLUR_CHECK(d <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), where,
                 " has shape dimension ", d, " too large");
    entry.shape.push_back(static_cast<int64_t>(d));
  }

  std::vector<uint64_t> offsets;
  DEBLUR_CHECK(read_unsigned_array(info.at("data_offsets"), offsets) && offsets.size() == 2, where,
               " has data_offsets that are not an array of 2 non-negative integers");
  entry.begin = offsets[0];
  entry.end = offsets[1];
  DEBLUR_CHECK(entry.begin <= entry.end, where, " has data_offsets [", entry.begin, ", ", entry.end,
               "] with begin after end");

  const size_t element_bytes = dtype_bytes(entry.dtype);
  DEBLUR_CHECK(checked_numel(dims, entry.numel) &&
                   entry.numel <= std::numeric_limits<uint64_t>::max() / element_bytes,
               where, " has shape ", shape_string(entry.shape), " whose size overflows");
  const uint64_t needed = entry.numel * element_bytes;
  const uint64_t held = entry.end - entry.begin;
  DEBLUR_CHECK(held == needed, where, " data_offsets [", entry.begin, ", ", entry.end, "] hold ",
               held, " bytes but shape ", shape_string(entry.shape), " of ", dtype_text, " needs ",
               needed);
  return entry;
}

std::map<std::string, std::string> parse_metadata(const std::string& source,
                                                  const nlohmann::json& value) {
  DEBLUR_CHECK(value.is_object(), source, ": \"__metadata__\" is not a JSON object");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) {
    DEBLUR_CHECK(item.is_string(), source, ": \"__metadata__\" value for key '", key,
                 "' is not a string");
    metadata[key] = item.get<std::string>();
  }
  return metadata;
}

// Parses the header text, refusing duplicate keys in any object: nlohmann keeps only the last
// of a repeated key, which would silently drop a tensor.
nlohmann::json parse_header_json(const std::string& source, const uint8_t* begin,
                                 const uint8_t* end) {
  std::vector<std::set<std::string>> keys_per_object;
  std::string duplicate;
  auto track_keys = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    // A valid header nests three deep (header, entry, shape); deeper nesting can only be an
    // attack on memory (each level costs a JSON node), so stop at once.
    DEBLUR_CHECK(depth <= 4, source, ": header JSON nests deeper than a safetensors header can");
    if (event == Event::object_start) {
      keys_per_object.emplace_back();
    } else if (event == Event::object_end) {
      if (!keys_per_object.empty()) keys_per_object.pop_back();
    } else if (event == Event::key && !keys_per_object.empty() && duplicate.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!keys_per_object.back().insert(key).second) duplicate = key;
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(begin, end, track_keys);
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat(source, ": header is not valid JSON: ", e.what()));
  }
  DEBLUR_CHECK(duplicate.empty(), source, ": header has duplicate key '", duplicate, "'");
  return header;
}

void convert(const Entry& entry, const uint8_t* bytes, std::vector<float>& values) {
  values.resize(entry.numel);
  if (entry.dtype == DType::F32) {
    if (entry.numel) std::memcpy(values.data(), bytes, entry.numel * sizeof(float));
    return;
  }
  for (uint64_t i = 0; i < entry.numel; ++i) {
    uint16_t bits;
    std::memcpy(&bits, bytes + 2 * i, sizeof(bits));
    values[i] = entry.dtype == DType::F16 ? f16_to_float(bits) : bf16_to_float(bits);
  }
}

}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
  }
  return "?";
}

float f16_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float.
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1f)  // inf, or NaN keeping its payload
    return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

float bf16_to_float(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

uint16_t float_to_f16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u)  // NaN: keep the top payload bits and force a quiet NaN
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  const int exponent = static_cast<int>(magnitude >> 23);  // biased by 127
  const int half_exponent = exponent - 127 + 15;
  if (half_exponent >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);  // inf or overflow
  if (half_exponent >= 1) {
    uint32_t half = (static_cast<uint32_t>(half_exponent) << 10) | ((magnitude >> 13) & 0x3ffu);
    const uint32_t rest = magnitude & 0x1fffu;
    // Round to nearest even; a carry out of the mantissa correctly bumps the exponent (to inf
    // at the top of the range).
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  // Subnormal half (units of 2^-24) or zero. value / 2^-24 = significand >> shift.
  const int shift = 126 - exponent;
  if (shift >= 25) return sign;  // below half the smallest subnormal (or a float subnormal)
  const uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
  uint32_t half = significand >> shift;
  const uint32_t rest = significand & ((1u << shift) - 1);
  const uint32_t halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
  return static_cast<uint16_t>(sign | half);
}

const TensorRecord* SafetensorsFile::find(const std::string& name) const {
  for (const auto& record : tensors)
    if (record.name == name) return &record;
  return nullptr;
}

SafetensorsFile parse_safetensors(const uint8_t* bytes, size_t size, const std::string& source) {
  DEBLUR_CHECK(size >= kHeaderLengthBytes, source, ": file is ", size,
               " bytes, too short for the 8-byte header length (truncated?)");
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes, sizeof(header_bytes));
  DEBLUR_CHECK(header_bytes <= kMaxHeaderBytes, source, ": header length ", header_bytes,
               " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  DEBLUR_CHECK(header_bytes <= size - kHeaderLengthBytes, source, ": header length ", header_bytes,
               " runs past the end of the file (", size, " bytes; truncated?)");

  const uint8_t* header_begin = bytes + kHeaderLengthBytes;
  const nlohmann::json header =
      parse_header_json(source, header_begin, header_begin + header_bytes);
  DEBLUR_CHECK(header.is_object(), source, ": header top level is not a JSON object");

  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == kMetadataKey)
      file.metadata = parse_metadata(source, info);
    else
      entries.push_back(parse_entry(source, name, info));
  }

  // The entries must tile the data section exactly: no holes, no overlaps, nothing past its end.
  const uint64_t data_bytes = size - kHeaderLengthBytes - header_bytes;
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  for (const auto& entry : entries) {
    DEBLUR_CHECK(entry.end <= data_bytes, source, ": tensor '", entry.name, "' data_offsets [",
                 entry.begin, ", ", entry.end, "] run past the data section (", data_bytes,
                 " bytes; truncated?)");
    DEBLUR_CHECK(entry.begin >= covered, source, ": tensor '", entry.name, "' data_offsets [",
                 entry.begin, ", ", entry.end, "] overlap the previous tensor, which ends at ",
                 covered);
    DEBLUR_CHECK(entry.begin == covered, source, ": tensor '", entry.name, "' data_offsets [",
                 entry.begin, ", ", entry.end, "] leave a hole: bytes [", covered, ", ",
                 entry.begin, ") of the data section belong to no tensor");
    covered = entry.end;
  }
  DEBLUR_CHECK(covered == data_bytes, source, ": data section is ", data_bytes,
               " bytes but the tensors cover only ", covered,
               " (trailing bytes belong to no tensor)");

  const uint8_t* data = header_begin + header_bytes;
  for (const auto& entry : entries) {
    TensorRecord record{entry.name, entry.shape, {}, entry.dtype};
    convert(entry, data + entry.begin, record.values);
    file.tensors.push_back(std::move(record));
  }
  return file;
}

SafetensorsFile read_safetensors(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  return parse_safetensors(bytes.data(), bytes.size(), path);
}

void write_safetensors(const std::string& path, const std::vector<TensorRecord>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the entries in the caller's order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& record : tensors) {
    const std::string where = path + ": tensor '" + record.name + "'";
    DEBLUR_CHECK(record.dtype != DType::BF16, where, ": writing BF16 is not supported");
    DEBLUR_CHECK(record.name != kMetadataKey, where, ": the name is reserved");
    DEBLUR_CHECK(names.insert(record.name).second, where, ": duplicate tensor name");
    std::vector<uint64_t> dims;
    for (int64_t d : record.shape) {
      DEBLUR_CHECK(d >= 0, where, ": negative dimension in shape ", shape_string(record.shape));
      dims.push_back(static_cast<uint64_t>(d));
    }
    uint64_t numel = 0;
    DEBLUR_CHECK(checked_numel(dims, numel) && numel == record.values.size(), where, ": has ",
                 record.values.size(), " values but shape ", shape_string(record.shape));
    const uint64_t end = offset + numel * dtype_bytes(record.dtype);
    header[record.name] = {{"dtype", dtype_name(record.dtype)},
                           {"shape", record.shape},
                           {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat(path,
                               ": cannot encode the header (names and metadata must be "
                               "UTF-8): ",
                               e.what()));
  }
  // Spaces after the JSON so the data section starts 8-byte aligned.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  std::vector<uint8_t> bytes(kHeaderLengthBytes);
  const uint64_t header_bytes = header_text.size();
  std::memcpy(bytes.data(), &header_bytes, sizeof(header_bytes));
  bytes.insert(bytes.end(), header_text.begin(), header_text.end());
  bytes.reserve(bytes.size() + offset);
  for (const auto& record : tensors) {
    if (record.dtype == DType::F32) {
      const auto* raw = reinterpret_cast<const uint8_t*>(record.values.data());
      bytes.insert(bytes.end(), raw, raw + record.values.size() * sizeof(float));
    } else {
      for (float v : record.values) {
        const uint16_t half = float_to_f16(v);
        const auto* raw = reinterpret_cast<const uint8_t*>(&half);
        bytes.insert(bytes.end(), raw, raw + sizeof(half));
      }
    }
  }

  write_file_atomically(path, bytes.data(), bytes.size());
}

}  // namespace deblur
