// Reading the PyTorch fixtures (see fixtures.h).
#include "tests/fixtures.h"

#include "engine/check.h"

#ifndef DEBLUR_FIXTURE_DIR
#error "DEBLUR_FIXTURE_DIR must be defined (CMake sets it to tests/fixtures)"
#endif

namespace deblur::testing {

SafetensorsFile load_fixture(const std::string& file) {
  const std::string path = std::string(DEBLUR_FIXTURE_DIR) + "/" + file;
  SafetensorsFile loaded = read_safetensors(path);
  loaded.metadata[kFixtureSourceKey] = path;
  return loaded;
}

Tensor fixture_tensor(const SafetensorsFile& file, const std::string& name) {
  auto source = file.metadata.find(kFixtureSourceKey);
  const std::string where = source != file.metadata.end()
                                ? source->second
                                : std::string("(fixture not from load_fixture)");
  const TensorRecord* record = file.find(name);
  DEBLUR_CHECK(record != nullptr, "fixture ", where, " has no tensor '", name,
               "' (regenerate with data_tools/make_fixtures.py?)");
  const std::vector<int64_t>& s = record->shape;
  Shape shape;
  if (s.size() == 4) {
    shape = {s[0], s[1], s[2], s[3]};
  } else if (s.size() == 1) {
    shape = {s[0], 1, 1, 1};
  } else {
    DEBLUR_CHECK(s.empty(), "fixture ", where, ": tensor '", name, "' has rank ", s.size(),
                 "; only ranks 0, 1 and 4 map to a Tensor");
    shape = {1, 1, 1, 1};
  }
  return Tensor::from_vector(shape, record->values);
}

}  // namespace deblur::testing
