// Tiled inference with the model on Device::CUDA (in the simulator): the predictor sends each
// tile to the model's device and brings the result back, and the image equals the CPU run's.
#include <catch2/catch.hpp>

#include "infer/image_io.h"
#include "infer/predictor.h"
#include "layers/deblur_unet.h"

using namespace deblur;

TEST_CASE("predictor on cuda (simulator) matches the cpu", "[sim][predictor]") {
  Image image = make_image(40, 24, 3, 8);
  for (size_t i = 0; i < image.data8.size(); ++i) image.data8[i] = uint8_t((i * 37 + i / 7) % 256);
  DeblurUNet model(32, /*seed=*/3);
  const TileOptions options{32, 8};  // two 32x32 tiles across, the second overlapping by 24
  const Image on_cpu = Predictor(model, options).run(image);
  model.to(Device::CUDA);
  RunStats stats;
  const Image on_cuda = Predictor(model, options).run(image, {}, &stats);
  CHECK(stats.tiles == 2);
  REQUIRE(on_cuda.data8.size() == on_cpu.data8.size());
  // Same float model on both devices with different summation orders (~1e-6 relative before
  // rounding to 8 bits): a value on a rounding boundary may move one level, never more.
  int worst = 0;
  for (size_t i = 0; i < on_cpu.data8.size(); ++i)
    worst = std::max(worst, std::abs(int(on_cpu.data8[i]) - int(on_cuda.data8[i])));
  CHECK(worst <= 1);
}
