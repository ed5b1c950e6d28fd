// The trainer end to end on the CPU: a run stopped and resumed takes bitwise the same steps as
// one that was not stopped (with and without --ema's weight average); checkpoints, metrics.csv
// and metrics.png land where the trainer says; overfitting one pair raises its PSNR; bad data
// and bad checkpoints fail with messages that name the file.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/check.h"
#include "engine/file_io.h"
#include "engine/safetensors.h"
#include "infer/image_io.h"
#include "infer/metrics.h"
#include "infer/predictor.h"
#include "layers/deblur_unet.h"
#include "tests/cli_testing.h"
#include "tests/testing.h"
#include "train/ema.h"
#include "train/run_record.h"
#include "train/synthetic_blur.h"
#include "train/trainer.h"

namespace deblur::train {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

// A smooth colourful picture (sharp) and a box-blurred copy of it (blur).
Image picture(int64_t w, int64_t h, int variant, bool blurred) {
  Image image = make_image(w, h, 3, 8);
  auto value = [&](int64_t x, int64_t y, int c) {
    const double phase = 0.37 * variant + 1.3 * c;
    return 127.5 + 100.0 * std::sin(0.31 * x + phase) * std::cos(0.23 * y - phase) +
           20.0 * ((x / 8 + y / 8 + variant) % 2);
  };
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        double v = 0.0;
        if (blurred) {
          for (int d = -2; d <= 2; ++d)
            v += value(std::clamp<int64_t>(x + d, 0, w - 1), y, c) / 5.0;
        } else {
          v = value(x, y, c);
        }
        image.data8[static_cast<size_t>((y * w + x) * 3 + c)] =
            static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
  return image;
}

void write_dataset(const fs::path& root, int pairs, int64_t w, int64_t h) {
  fs::create_directories(root / "blur");
  fs::create_directories(root / "sharp");
  for (int k = 0; k < pairs; ++k) {
    const std::string name = std::string(1, char('a' + k)) + ".png";
    write_image((root / "blur" / name).string(), picture(w, h, k, true));
    write_image((root / "sharp" / name).string(), picture(w, h, k, false));
  }
}

TrainConfig small_config(const ScratchDir& dir, const std::string& name) {
  TrainConfig c;
  c.train_data = (dir / "train").string();
  c.test_data = (dir / "val").string();
  c.batch_size = 2;
  c.patch_size = 32;
  c.num_epochs = 4;
  c.workers = 2;
  c.val_tile = 0;
  c.threads = 2;
  c.base = 8;  // the same network 4x narrower: 16x fewer multiplications, fast enough for CI
  c.checkpoint_dir = (dir / name / "checkpoints").string();
  c.run_dir = (dir / name / "run").string();
  return c;
}

const LogFn kQuiet = [](const std::string&, bool) {};

std::vector<TensorRecord> tensors_of(const fs::path& path) {
  return read_safetensors(path.string()).tensors;
}

TEST_CASE("trainer: stopping and resuming gives bitwise the steps of an unbroken run",
          "[trainer]") {
  ScratchDir dir;
  write_dataset(dir / "train", 3, 40, 36);  // 2 batches per epoch: one of 2, one of 1
  write_dataset(dir / "val", 1, 48, 40);

  TrainConfig unbroken = small_config(dir, "unbroken");
  unbroken.max_steps = 3;  // epoch 1 (2 steps, validation), then one step of epoch 2
  const TrainResult a = run_training(unbroken, kQuiet);
  CHECK(a.steps == 3);

  TrainConfig first = small_config(dir, "resumed");
  first.max_steps = 1;  // stops inside epoch 1
  CHECK(run_training(first, kQuiet).steps == 1);
  TrainConfig second = small_config(dir, "resumed");
  second.max_steps = 3;
  second.resume = (fs::path(second.checkpoint_dir) / "last.safetensors").string();
  const TrainResult b = run_training(second, kQuiet);
  CHECK(b.steps == 3);

  const auto want = tensors_of(fs::path(unbroken.checkpoint_dir) / "last.safetensors");
  const auto got = tensors_of(fs::path(second.checkpoint_dir) / "last.safetensors");
  REQUIRE(want.size() == 82 * 3);  // weights and both moments
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(want[i].name);
    CHECK(got[i].name == want[i].name);
    CHECK(got[i].values == want[i].values);
  }
  // Epoch 1 was validated once in each run, with the same weights: the same best checkpoint.
  CHECK(fs::path(a.best_checkpoint).filename() == fs::path(b.best_checkpoint).filename());
  CHECK_THAT(fs::path(a.best_checkpoint).filename().string(),
             Catch::StartsWith("best_model_epoch_1_psnr_") && Catch::EndsWith(".safetensors"));
  const SafetensorsFile best = read_safetensors(a.best_checkpoint);
  CHECK(best.metadata.at("epoch") == "1");  // resuming from it starts epoch 2 at its start
  CHECK(best.metadata.at("batch") == "0");
  // Each run's metrics.csv holds its finished epochs once: the header and epoch 1.
  for (const std::string& run_dir : {unbroken.run_dir, second.run_dir}) {
    std::ifstream csv((fs::path(run_dir) / "metrics.csv").string());
    std::vector<std::string> lines;
    for (std::string line; std::getline(csv, line);) lines.push_back(line);
    REQUIRE(lines.size() == 2);
    CHECK_THAT(lines[1], Catch::StartsWith("1,2,"));  // epoch 1, step 2
  }
  CHECK(best.metadata.count("config") == 1);
  CHECK(best.find("enc1.conv1.weight") != nullptr);
  // A checkpoint is also a model file: its width is read off it and the moments are skipped.
  const std::unique_ptr<DeblurUNet> model = load_deblur_unet(a.best_checkpoint);
  CHECK(model->parameters().front().value->n() == 8);
  // deblur export: the weights alone, F16, with the checkpoint's scores.
  const fs::path exported = dir / "model_f16.safetensors";
  const testing::CliRun run = testing::run_cli("export --model " +
                                               testing::shell_quoted(a.best_checkpoint) +
                                               " --output " + testing::shell_quoted(exported));
  INFO(run.out << run.err);
  REQUIRE(run.exit_code == 0);
  const SafetensorsFile f16 = read_safetensors(exported.string());
  CHECK(f16.tensors.size() == 82);
  CHECK(f16.tensors.front().dtype == DType::F16);
  CHECK(f16.metadata.at("psnr") == best.metadata.at("psnr"));
  const TensorRecord& w16 = *f16.find("enc1.conv1.weight");
  const TensorRecord& w32 = *best.find("enc1.conv1.weight");
  for (size_t i = 0; i < w32.values.size(); ++i)  // F16 keeps 11 significant bits
    CHECK(std::abs(w16.values[i] - w32.values[i]) <= std::abs(w32.values[i]) * 0x1p-11 + 1e-7);
  CHECK(fs::exists(fs::path(unbroken.run_dir) / "metrics.csv"));
  CHECK(fs::exists(fs::path(unbroken.run_dir) / "metrics.png"));
  CHECK(fs::exists(fs::path(unbroken.run_dir) / "params.json"));
  const RunInfo info = read_run_info((fs::path(unbroken.run_dir) / "run.json").string());
  CHECK(info.status == "FINISHED");
  CHECK(info.steps == 3);
  CHECK(info.best_epoch == 1);
  CHECK(info.best_checkpoint == a.best_checkpoint);
}

// PSNR of a model on the validation pair "a", as the trainer's validation computes it (val_tile 0).
double psnr_on(const DeblurUNet& model, const fs::path& val) {
  const Image out = Predictor(model, TileOptions{0, 0}).run(read_image((val / "blur" / "a.png").string()));
  return compare_images(out, read_image((val / "sharp" / "a.png").string())).psnr;
}

// PSNR of the untrained model (the trainer's initialisation from c.seed) on the pair.
double untrained_psnr(const TrainConfig& c, const fs::path& val) {
  return psnr_on(DeblurUNet(c.base, c.seed), val);
}

TEST_CASE("trainer: overfitting one pair raises its PSNR by at least 3 dB in 200 steps",
          "[trainer][slow]") {
  ScratchDir dir;
  // One pair seen 40 times an epoch (a batch of 1 each): 200 steps are 5 epochs, so 5
  // validations and checkpoints rather than 200.
  write_dataset(dir / "val", 1, 64, 64);
  fs::create_directories(dir / "train" / "blur");
  fs::create_directories(dir / "train" / "sharp");
  for (int k = 0; k < 40; ++k) {
    const std::string name = "copy" + std::to_string(100 + k) + ".png";
    fs::copy_file(dir / "val" / "blur" / "a.png", dir / "train" / "blur" / name);
    fs::copy_file(dir / "val" / "sharp" / "a.png", dir / "train" / "sharp" / name);
  }
  TrainConfig c = small_config(dir, "overfit");
  c.batch_size = 1;
  c.patch_size = 64;  // the whole image: every step sees the same pixels, turned
  c.num_epochs = 5;
  c.max_steps = 200;
  const double before = untrained_psnr(c, dir / "val");
  const TrainResult result = run_training(c, kQuiet);
  INFO("untrained PSNR " << before << " dB, best " << result.best_psnr << " dB at epoch "
                         << result.best_epoch);
  CHECK(result.steps == 200);
  CHECK(result.best_psnr >= before + 3.0);
}

TEST_CASE("trainer: early stopping after --patience epochs without a better PSNR", "[trainer]") {
  ScratchDir dir;
  write_dataset(dir / "train", 2, 40, 36);
  write_dataset(dir / "val", 1, 48, 40);
  TrainConfig c = small_config(dir, "patience");
  c.num_epochs = 10;
  c.patience = 2;
  c.learning_rate = 1e-12;  // the weights move by ~1e-12: the 8-bit outputs, so the PSNR, stay
  c.eta_min = 0.0;
  const TrainResult result = run_training(c, kQuiet);
  CHECK(result.early_stopped);
  CHECK(result.best_epoch == 1);
  CHECK(result.epochs_run == 3);  // epoch 1 the best, epochs 2 and 3 no better
}

TEST_CASE("trainer: bad data and bad checkpoints fail naming the file", "[trainer]") {
  ScratchDir dir;
  write_dataset(dir / "train", 2, 40, 36);
  write_dataset(dir / "val", 1, 48, 40);
  TrainConfig c = small_config(dir, "bad");
  SECTION("missing training folder") {
    c.train_data = (dir / "nowhere").string();
    CHECK_THROWS_WITH(run_training(c, kQuiet), Catch::Contains("nowhere: no such folder"));
  }
  SECTION("patch larger than the images") {
    c.patch_size = 48;
    CHECK_THROWS_WITH(run_training(c, kQuiet),
                      Catch::Contains("a.png: 40x36 is smaller than the 48x48 patch"));
  }
  SECTION("a resume file that is not a training checkpoint") {
    const fs::path model = dir / "weights.safetensors";
    write_safetensors(model.string(), {{"x", {1}, {1.0f}}});
    c.resume = model.string();
    CHECK_THROWS_WITH(run_training(c, kQuiet),
                      Catch::Contains("weights.safetensors: not a deblur training checkpoint"));
  }
  SECTION("a new run over an earlier one's checkpoints") {
    TrainConfig first = c;
    first.max_steps = 1;
    run_training(first, kQuiet);
    CHECK_THROWS_WITH(run_training(c, kQuiet),
                      Catch::Contains("last.safetensors is from an earlier run") &&
                          Catch::Contains("--resume"));
  }
  SECTION("a resume with other settings") {
    TrainConfig first = c;
    first.max_steps = 1;
    run_training(first, kQuiet);
    TrainConfig other = c;
    other.resume = (fs::path(c.checkpoint_dir) / "last.safetensors").string();
    other.batch_size = 1;
    other.seed = 7;
    CHECK_THROWS_WITH(run_training(other, kQuiet),
                      Catch::Contains("these differ") && Catch::Contains("--batch_size: 2") &&
                          Catch::Contains("--seed: 42"));
  }
  SECTION("--init_weights with --resume") {
    c.init_weights = c.resume = (dir / "m.safetensors").string();
    CHECK_THROWS_WITH(run_training(c, kQuiet), Catch::Contains("give one of them"));
  }
  SECTION("--init_weights of another width") {
    TrainConfig first = c;
    first.max_steps = 1;
    run_training(first, kQuiet);
    TrainConfig wider = small_config(dir, "wider");
    wider.base = 16;
    wider.init_weights = (fs::path(c.checkpoint_dir) / "last.safetensors").string();
    CHECK_THROWS_WITH(run_training(wider, kQuiet),
                      Catch::Contains("last.safetensors: enc1.conv1.weight is [8, 3, 3, 3]") &&
                          Catch::Contains("this run builds width 16 (--base)"));
  }
  SECTION("--device cuda without a GPU") {
    c.device = "cuda";
    CHECK_THROWS_WITH(run_training(c, kQuiet), Catch::Contains("--device cuda"));
  }
}

TEST_CASE("trainer: --init_weights starts a new run from a model's weights", "[trainer]") {
  ScratchDir dir;
  write_dataset(dir / "train", 3, 40, 36);
  write_dataset(dir / "val", 1, 48, 40);
  TrainConfig first = small_config(dir, "first");
  first.max_steps = 2;  // epoch 1: its weights 2 steps away from the seeded start
  const TrainResult a = run_training(first, kQuiet);
  const SafetensorsFile source = read_safetensors(a.best_checkpoint);

  TrainConfig carried = small_config(dir, "carried");  // the same seed: the same seeded start
  carried.init_weights = a.best_checkpoint;  // a checkpoint: its optimizer moments are skipped
  carried.max_steps = 2;
  carried.learning_rate = 1e-12;  // the weights move by ~1e-12
  carried.eta_min = 0.0;
  const TrainResult b = run_training(carried, kQuiet);
  CHECK(b.steps == 2);                // a fresh step count
  CHECK(b.best_psnr == a.best_psnr);  // the same weights: the same 8-bit outputs
  const SafetensorsFile last =
      read_safetensors((fs::path(carried.checkpoint_dir) / "last.safetensors").string());
  CHECK(last.metadata.at("step") == "2");
  DeblurUNet seeded(carried.base, carried.seed);
  for (const char* name : {"enc1.conv1.weight", "bottleneck.conv2.weight", "final.bias"}) {
    INFO(name);
    const std::vector<float>& want = source.find(name)->values;
    const std::vector<float>& got = last.find(name)->values;
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) CHECK(std::abs(got[i] - want[i]) <= 1e-9f);
    std::vector<float> start;  // the seeded initialisation, which the run did not start from
    for (const NamedParameter& p : seeded.parameters())
      if (p.name == name) start = p.value->to_vector();
    REQUIRE(start.size() == want.size());
    CHECK(start != got);
  }
  // params.json says where the run began, also once the run is resumed.
  const auto params_json = [&] {
    const std::vector<uint8_t> bytes =
        read_file((fs::path(carried.run_dir) / "params.json").string());
    return std::string(bytes.begin(), bytes.end());
  };
  const std::string recorded = "\"init_weights\":\"" + a.best_checkpoint + "\"";
  CHECK_THAT(params_json(), Catch::Contains(recorded));
  TrainConfig resumed = carried;
  resumed.init_weights.clear();
  resumed.resume = (fs::path(carried.checkpoint_dir) / "last.safetensors").string();
  resumed.max_steps = 3;
  CHECK(run_training(resumed, kQuiet).steps == 3);
  CHECK_THAT(params_json(), Catch::Contains(recorded));
  // The command line's flag reaches the trainer (which refuses it beside --resume at once).
  const testing::CliRun cli = testing::run_cli(
      "train --train_data " + testing::shell_quoted(dir / "train") + " --test_data " +
      testing::shell_quoted(dir / "val") + " --init_weights " +
      testing::shell_quoted(a.best_checkpoint) + " --resume " +
      testing::shell_quoted(a.best_checkpoint));
  CHECK(cli.exit_code != 0);
  CHECK_THAT(cli.err, Catch::Contains("give one of them"));
}

TEST_CASE("weight average: moves (1 - decay) of the way each update, and saves and restores both",
          "[trainer][ema]") {
  DeblurUNet model(8, 1);
  WeightAverage average(model, 0.75);
  const std::vector<TensorRecord> start = model.state();
  SafetensorsFile moved;  // the optimizer's weights, elsewhere: 2 w + 1
  moved.tensors = start;
  for (TensorRecord& r : moved.tensors)
    for (float& v : r.values) v = 2.0f * v + 1.0f;
  model.load_state(moved, "moved");
  average.update();
  average.update();
  const std::vector<TensorRecord> averaged = average.average().state();
  REQUIRE(averaged.size() == start.size());
  for (size_t i = 0; i < start.size(); ++i) {
    INFO(start[i].name);
    std::vector<float> expected;
    for (size_t k = 0; k < start[i].values.size(); ++k) {
      const double from = start[i].values[k], to = moved.tensors[i].values[k];
      expected.push_back(static_cast<float>(from + (1.0 - 0.75 * 0.75) * (to - from)));
    }
    // Two float lerps of values under 3 in size: a few roundings of 3 u each.
    CHECK(testing::expect_close(averaged[i].values, expected, 1e-6, 0, start[i].name));
  }
  // A checkpoint holds the average under the reference names, the raw weights beside it.
  SafetensorsFile file;
  file.tensors = average.state();
  REQUIRE(file.tensors.size() == 2 * start.size());
  CHECK(file.find("enc1.conv1.weight")->values == averaged.front().values);
  CHECK(file.find("optimizer.weights.enc1.conv1.weight")->values == moved.tensors.front().values);
  CHECK(model_weights(file).tensors.size() == start.size());  // what infer and export load
  DeblurUNet restored_model(8, 2);
  WeightAverage restored(restored_model, 0.75);
  restored.load_state(file, "ckpt");
  CHECK(restored_model.state().front().values == moved.tensors.front().values);
  CHECK(restored.average().state().back().values == averaged.back().values);
  SafetensorsFile without_raw;
  without_raw.tensors = averaged;
  CHECK_THROWS_WITH(restored.load_state(without_raw, "plain.safetensors"),
                    Catch::Contains("plain.safetensors") && Catch::Contains("--ema"));
  CHECK_THROWS_WITH(WeightAverage(model, 1.0), Catch::Contains("[0, 1)"));
}

TEST_CASE("trainer --ema: validation and checkpoints use the average, and resuming is bitwise",
          "[trainer][ema]") {
  ScratchDir dir;
  write_dataset(dir / "train", 3, 40, 36);
  write_dataset(dir / "val", 1, 48, 40);
  const auto config = [&](const std::string& name, int64_t max_steps) {
    TrainConfig c = small_config(dir, name);
    c.ema = 0.5;  // far from the raw weights after a few steps
    c.learning_rate = 1e-2;
    c.max_steps = max_steps;
    return c;
  };
  const TrainConfig unbroken = config("unbroken", 3);
  const TrainResult a = run_training(unbroken, kQuiet);
  TrainConfig first = config("resumed", 1);
  CHECK(run_training(first, kQuiet).steps == 1);
  TrainConfig second = config("resumed", 3);
  second.resume = (fs::path(second.checkpoint_dir) / "last.safetensors").string();
  CHECK(run_training(second, kQuiet).steps == 3);
  const auto want = tensors_of(fs::path(unbroken.checkpoint_dir) / "last.safetensors");
  const auto got = tensors_of(fs::path(second.checkpoint_dir) / "last.safetensors");
  REQUIRE(want.size() == 82 * 4);  // the average, the raw weights and both moments
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(want[i].name);
    CHECK(got[i].name == want[i].name);
    CHECK(got[i].values == want[i].values);
  }

  // The best checkpoint's reported PSNR is the average's (its reference names), not the raw
  // weights'.
  const SafetensorsFile best = read_safetensors(a.best_checkpoint);
  const std::unique_ptr<DeblurUNet> averaged = load_deblur_unet(a.best_checkpoint);
  DeblurUNet raw(8);
  raw.load_state(training_weights(best), "raw");
  const double reported = std::stod(best.metadata.at("psnr"));
  CHECK(std::abs(psnr_on(*averaged, dir / "val") - reported) < 1e-4);
  CHECK(std::abs(psnr_on(raw, dir / "val") - reported) > 1e-3);

  // A run resumes only with the --ema it was started with.
  TrainConfig other = config("resumed", 4);
  other.ema = 0.0;
  other.resume = second.resume;
  CHECK_THROWS_WITH(run_training(other, kQuiet), Catch::Contains("--ema: 0.5 in the checkpoint"));
}

TEST_CASE("deblur train: Ctrl-C finishes the step, saves last.safetensors and exits 130",
          "[trainer][cli]") {
  ScratchDir dir;
  write_dataset(dir / "train", 3, 40, 36);
  write_dataset(dir / "val", 1, 48, 40);
  // Endless (1000 epochs) until SIGINT arrives 3 s in; the handler is installed before anything
  // else the trainer does, so the signal always finds it.
  const testing::CliRun run = testing::run_cli(
      "train --train_data " + testing::shell_quoted(dir / "train") + " --test_data " +
          testing::shell_quoted(dir / "val") + " --base 8 --batch_size 2 --patch_size 32 "
          "--num_epochs 1000 --workers 1 --threads 2 --val_tile 0 --checkpoint_dir " +
          testing::shell_quoted(dir / "ck") + " --run_dir " + testing::shell_quoted(dir / "run"),
      "timeout --preserve-status -s INT 3");
  INFO(run.out << run.err);
  CHECK(run.exit_code == 130);
  CHECK_THAT(run.out, Catch::Contains("interrupted at step"));
  const SafetensorsFile last = read_safetensors((dir / "ck" / "last.safetensors").string());
  CHECK(std::stoll(last.metadata.at("step")) >= 1);
  CHECK(last.find("optimizer.exp_avg.final.bias") != nullptr);
  // The run folder says how it ended, and deblur runs lists it.
  CHECK(read_run_info((dir / "run" / "run.json").string()).status == "KILLED");
  const testing::CliRun runs = testing::run_cli("runs --dir " + testing::shell_quoted(dir.path()));
  CHECK(runs.exit_code == 0);
  CHECK_THAT(runs.out, Catch::Contains("deblur_unet") && Catch::Contains("KILLED"));
}

TEST_CASE("camera-shake blur: normalised thin centred kernels, deterministic, blurs a patch",
          "[trainer][synthetic_blur]") {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const BlurKernel k = camera_shake_kernel(seed, 31);
    REQUIRE(k.size % 2 == 1);
    REQUIRE(k.size <= 31);
    double sum = 0.0;
    int nonzero = 0;
    for (float w : k.weights) {
      CHECK(w >= 0.0f);
      sum += w;
      nonzero += w > 0.0f;
    }
    CHECK(sum == Approx(1.0).epsilon(1e-5));
    CHECK(nonzero < k.size * k.size);  // a curve, not a box
    // Centred on its centroid: the blur does not move the image.
    double centroid_x = 0.0, centroid_y = 0.0;
    for (int64_t y = 0; y < k.size; ++y)
      for (int64_t x = 0; x < k.size; ++x) {
        centroid_x += k.weights[static_cast<size_t>(y * k.size + x)] * double(x - k.size / 2);
        centroid_y += k.weights[static_cast<size_t>(y * k.size + x)] * double(y - k.size / 2);
      }
    CHECK(std::abs(centroid_x) < 1e-3);
    CHECK(std::abs(centroid_y) < 1e-3);
    CHECK(camera_shake_kernel(seed, 31).weights == k.weights);
  }
  for (uint64_t seed = 0; seed < 20; ++seed) {  // the smallest kernel still blurs
    const BlurKernel k = camera_shake_kernel(seed, 3);
    REQUIRE(k.size == 3);
    CHECK(std::count_if(k.weights.begin(), k.weights.end(), [](float w) { return w > 0.0f; }) > 1);
  }
  const int64_t p = 64;
  std::vector<float> sharp(3 * p * p), blur(sharp.size()), again(sharp.size());
  for (int64_t i = 0; i < p * p * 3; ++i) sharp[i] = ((i / 8 + i / (8 * p)) % 2) ? 0.8f : -0.8f;
  synthesize_camera_shake(sharp.data(), blur.data(), p, 7);
  synthesize_camera_shake(sharp.data(), again.data(), p, 7);
  CHECK(blur == again);
  double change = 0.0;
  for (size_t i = 0; i < sharp.size(); ++i) {
    CHECK(blur[i] >= -1.0f);
    CHECK(blur[i] <= 1.0f);
    change += std::abs(blur[i] - sharp[i]);
  }
  CHECK(change / double(sharp.size()) > 0.01);  // edges of a checkerboard did move
}

}  // namespace
}  // namespace deblur::train
