// Reading the PyTorch fixtures (see fixtures.h).
#include "tests/fixtures.h"

#include <cmath>

#include "engine/check.h"
#include "tests/fixture_rng.h"

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

void load_fixture_weights(DeblurUNet& model) {
  std::vector<NamedParameter> params = model.parameters();
  for (size_t k = 0; k < params.size(); ++k) {
    const std::string& name = params[k].name;
    Tensor& value = *params[k].value;
    std::vector<float> values;
    if (name.find(".norm") != std::string::npos) {
      const bool weight = name.ends_with(".weight");
      values = fixture_symmetric(1000 + k, value.numel(), 0.2, weight ? 1.0 : 0.0);
    } else {
      // A conv's bias shares its weight's fan-in; the weight comes just before it.
      const Tensor& weight = name.ends_with(".bias") ? *params[k - 1].value : value;
      const double fan_in = double(weight.c() * weight.h() * weight.w());
      values = fixture_symmetric(1000 + k, value.numel(), 1.0 / std::sqrt(fan_in));
    }
    std::copy(values.begin(), values.end(), value.data());
  }
}

}  // namespace deblur::testing
