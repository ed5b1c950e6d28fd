// deblur serve: the HTTP inference service (serve/service.h) from the command line.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "engine/check.h"
#include "engine/device_memory.h"
#include "engine/tensor.h"
#include "infer/cli/args.h"
#include "infer/cli/commands.h"
#include "kernels/cpu/parallel.h"
#include "layers/deblur_unet.h"
#include "serve/service.h"

namespace deblur::cli {

namespace {

constexpr const char* kHelp =
    "usage: deblur serve --model M.safetensors [options]\n"
    "\n"
    "Serves the model over HTTP:\n"
    "  GET /             a web page: choose or drop an image, see the result, download it\n"
    "  POST /v1/deblur   the image bytes (PNG, JPEG or BMP) in, the deblurred image out:  \n"
    "                    PNG, or JPEG with ?format=jpeg or Accept: image/jpeg; timing headers\n"
    "                    X-Deblur-*-Ms and Server-Timing; errors as JSON {\"error\": ...}\n"
    "  GET /healthz      model loaded, in-flight requests and queue depth (JSON)\n"
    "  GET /metrics      Prometheus text: requests by status, latency histogram, in-flight,\n"
    "                    queue depth, pixels processed\n"
    "\n"
    "options:\n"
    "  --host 127.0.0.1       the address to listen on (0.0.0.0: every interface)\n"
    "  --port 8080            (0: any free port, printed at start)\n"
    "  --device cpu           cpu, or cuda (a CUDA build with a GPU)\n"
    "  --workers 1            requests running the model at once (the CPU threads are\n"
    "                         shared out among them)\n"
    "  --queue 8              requests waiting for a worker; more are answered 503 with\n"
    "                         Retry-After\n"
    "  --connections 64       connections served at once (at least workers + queue + 4);\n"
    "                         more wait for a free one\n"
    "  --max_pixels 16777216  larger images are refused (413) from their header, undecoded\n"
    "  --max_body_mb 50       larger uploads are refused (413)\n"
    "  --tile 512 --overlap 64  tiling, as deblur infer\n"
    "  --threads N            CPU threads in all (default: all cores)\n"
    "  --read_timeout 30      seconds a client may stall while sending its request (408)\n"
    "  --upload_timeout 120   seconds a whole request body may take (408)\n"
    "  --process_timeout 300  seconds a request may wait and run before a 503\n"
    "\n"
    "SIGTERM or Ctrl-C stops accepting, finishes the requests already in, and exits 0; a\n"
    "second one exits at once (1).\n";

double seconds_option(const Args& args, const std::string& name, double fallback) {
  const double value = args.get_double(name, fallback);
  DEBLUR_CHECK(value > 0 && value < 1e7, "--", name, " needs a positive number of seconds, got ",
               value);
  return value;
}

int count_option(const Args& args, const std::string& name, int fallback, int low, int high) {
  const int64_t value = args.get_int(name, fallback);
  DEBLUR_CHECK(value >= low && value <= high, "--", name, " must be ", low, "..", high, ", got ",
               value);
  return int(value);
}

}  // namespace

int run_serve(int argc, char** argv) {
  Args args(argc, argv, 2, {"help"});
  if (args.has("help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  args.allow_only({"help", "model", "host", "port", "device", "workers", "queue", "connections",
                   "max_pixels", "max_body_mb", "tile", "overlap", "threads", "read_timeout",
                   "upload_timeout", "process_timeout"});
  const std::string model_path = args.get("model", "");
  DEBLUR_CHECK(!model_path.empty(), "--model is required (see --help)");
  serve::ServeOptions options;
  options.host = args.get("host", options.host);
  const int64_t port = args.get_int("port", options.port);
  DEBLUR_CHECK(port >= 0 && port <= 65535, "--port must be 0..65535, got ", port);
  options.port = int(port);
  options.workers = count_option(args, "workers", options.workers, 1, 1024);
  options.queue = count_option(args, "queue", options.queue, 0, 1024);
  options.connections = count_option(args, "connections", options.connections, 1, 4096);
  options.max_pixels = args.get_int("max_pixels", options.max_pixels);
  const int64_t body_mb = args.get_int("max_body_mb", options.max_body_bytes >> 20);
  DEBLUR_CHECK(body_mb > 0 && body_mb <= 4096, "--max_body_mb must be 1..4096, got ", body_mb);
  options.max_body_bytes = body_mb << 20;
  options.read_timeout_s = seconds_option(args, "read_timeout", options.read_timeout_s);
  options.upload_timeout_s = seconds_option(args, "upload_timeout", options.upload_timeout_s);
  options.process_timeout_s = seconds_option(args, "process_timeout", options.process_timeout_s);
  const std::string device = args.get("device", "cpu");
  DEBLUR_CHECK(device == "cpu" || device == "cuda", "--device must be cpu or cuda, got '",
               device, "'");
  DEBLUR_CHECK(device == "cpu" || cuda_available(),
               "--device cuda: no CUDA device is visible, or this build has no CUDA backend");
  const TileOptions tiles{args.get_int("tile", 512), args.get_int("overlap", 64)};
  check_tile_options(tiles);
  cpu::set_num_threads(static_cast<int>(args.get_int("threads", 0)));

  // SIGINT and SIGTERM go to one thread that stops the service (SIGUSR1 wakes it when the
  // service ends on its own); blocked before any other thread exists, so every thread inherits
  // the mask, and a signal during start-up waits for that thread rather than killing us.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::unique_ptr<DeblurUNet> model = load_deblur_unet(model_path);
  if (device == "cuda") model->to(Device::CUDA);
  const Predictor predictor(*model, tiles);
  serve::Service service(predictor, options);
  service.bind();
  std::thread signal_waiter([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    if (signal == SIGUSR1) return;
    std::printf("deblur serve: %s: finishing the requests in progress (again to exit now)\n",
                signal == SIGTERM ? "SIGTERM" : "SIGINT");
    std::fflush(stdout);
    service.stop();
    sigwait(&signals, &signal);
    if (signal == SIGUSR1) return;
    std::printf("deblur serve: exiting without finishing the requests in progress\n");
    std::fflush(stdout);
    std::_Exit(1);
  });
  struct WakeWaiter {  // on every way out of run(), an exception included
    std::thread& waiter;
    ~WakeWaiter() {
      pthread_kill(waiter.native_handle(), SIGUSR1);
      waiter.join();
    }
  } wake_waiter{signal_waiter};
  std::printf("deblur serve: %s (%lld parameters, %s) on http://%s:%d\n", model_path.c_str(),
              static_cast<long long>(model->parameter_count()), device.c_str(),
              options.host.c_str(), service.port());
  std::fflush(stdout);
  service.run();
  std::printf("deblur serve: stopped\n");
  return 0;
}

}  // namespace deblur::cli
