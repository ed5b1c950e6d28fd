// The HTTP inference service on cpp-httplib (serve/service.h).
#include "serve/service.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/check.h"
#include "infer/image_io.h"
#include "serve/page.h"

namespace deblur::serve {

namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

// Latency histogram bucket bounds (seconds): from a small tile to a large image on a few cores.
constexpr double kBuckets[] = {0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0};
constexpr size_t kBucketCount = sizeof kBuckets / sizeof kBuckets[0];

// A request's failure with the HTTP status it answers.
struct HttpError : Error {
  HttpError(int code, const std::string& message) : Error(message), status(code) {}
  int status;
};

std::string json_error(const std::string& message) {
  return nlohmann::json{{"error", message}}.dump(-1, ' ', false,
                                                 nlohmann::json::error_handler_t::replace);
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

// PNG unless ?format=jpeg, or an Accept header that names image/jpeg before any image/png.
ImageFormat answer_format(const httplib::Request& req) {
  if (req.has_param("format")) {
    const std::string format = req.get_param_value("format");
    if (format == "png") return ImageFormat::PNG;
    if (format == "jpeg" || format == "jpg") return ImageFormat::JPEG;
    throw HttpError(400, "format '" + format + "': png or jpeg");
  }
  const std::string accept = req.get_header_value("Accept");
  const size_t jpeg = accept.find("image/jpeg"), png = accept.find("image/png");
  return jpeg != std::string::npos && (png == std::string::npos || jpeg < png) ? ImageFormat::JPEG
                                                                              : ImageFormat::PNG;
}

}  // namespace

struct Service::State {
  State(const Predictor& p, ServeOptions o) : predictor(p), options(std::move(o)) {}

  const Predictor& predictor;
  ServeOptions options;
  httplib::Server server;
  int port = 0;

  // Admission: requests in the service (running + waiting) and running ones.
  std::mutex mutex;
  std::condition_variable worker_free;
  int admitted = 0, running = 0;

  // Metrics.
  std::mutex metrics_mutex;
  std::map<int, uint64_t> requests_by_status;
  uint64_t bucket_counts[kBucketCount + 1] = {};  // the last one: above every bound
  double latency_sum = 0.0;
  uint64_t latency_count = 0;
  std::atomic<uint64_t> pixels_processed{0};

  void record(int status, double seconds) {
    std::lock_guard<std::mutex> lock(metrics_mutex);
    ++requests_by_status[status];
    size_t b = 0;
    while (b < kBucketCount && seconds > kBuckets[b]) ++b;
    ++bucket_counts[b];
    latency_sum += seconds;
    ++latency_count;
  }

  // A request to /v1/deblur that httplib refused before the handler (body over the limit, a
  // malformed request): counted by status, outside the latency histogram.
  void record_refused(int status) {
    std::lock_guard<std::mutex> lock(metrics_mutex);
    ++requests_by_status[status];
  }

  void deblur(const httplib::Request& req, httplib::Response& res);
  void healthz(httplib::Response& res);
  void metrics(httplib::Response& res);
};

void Service::State::deblur(const httplib::Request& req, httplib::Response& res) {
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    Seconds(options.process_timeout_s));
  bool admitted_here = false, running_here = false;
  auto leave = [&] {
    std::lock_guard<std::mutex> lock(mutex);
    if (running_here) --running;
    if (admitted_here) --admitted;
    running_here = admitted_here = false;
    worker_free.notify_one();
  };
  try {
    if (req.body.empty()) throw HttpError(400, "empty body: POST the image bytes");
    const ImageFormat format = answer_format(req);
    // The header first: an unsupported file or too many pixels costs no decoding.
    ImageInfo info;
    try {
      info = probe_image(reinterpret_cast<const uint8_t*>(req.body.data()), req.body.size(),
                         "the request body");
    } catch (const Error& e) {
      throw HttpError(400, e.what());
    }
    if (info.width * info.height > options.max_pixels)
      throw HttpError(413, detail::concat("the image is ", info.width, "x", info.height, " = ",
                                          info.width * info.height,
                                          " pixels; this service takes at most ",
                                          options.max_pixels));
    {
      std::unique_lock<std::mutex> lock(mutex);
      if (admitted >= options.workers + options.queue) {
        res.set_header("Retry-After", "1");
        throw HttpError(503, detail::concat("busy: ", running, " running and ",
                                            admitted - running, " waiting; try again shortly"));
      }
      ++admitted;
      admitted_here = true;
      if (!worker_free.wait_until(lock, deadline, [&] { return running < options.workers; })) {
        res.set_header("Retry-After", "1");
        throw HttpError(503, "waited longer than the processing timeout for a worker");
      }
      ++running;
      running_here = true;
    }
    const auto started = Clock::now();
    Image image;
    try {
      image = decode_image(reinterpret_cast<const uint8_t*>(req.body.data()), req.body.size(),
                           "the request body", options.max_pixels);
    } catch (const Error& e) {
      throw HttpError(400, e.what());
    }
    const auto decoded = Clock::now();
    const Image out = predictor.run(image, [&](int64_t, int64_t) {
      if (Clock::now() > deadline)
        throw HttpError(503, detail::concat("processing took longer than ",
                                            options.process_timeout_s, " s"));
    });
    const auto inferred = Clock::now();
    std::vector<uint8_t> bytes = encode_image(out, format, options.jpeg_quality);
    const auto encoded = Clock::now();
    leave();
    pixels_processed += uint64_t(image.width * image.height);
    res.status = 200;
    res.set_content(reinterpret_cast<const char*>(bytes.data()), bytes.size(),
                    format == ImageFormat::JPEG ? "image/jpeg" : "image/png");
    const double queue_ms = ms(started - start), decode_ms = ms(decoded - started),
                 inference_ms = ms(inferred - decoded), encode_ms = ms(encoded - inferred);
    res.set_header("X-Deblur-Queue-Ms", fixed(queue_ms, 1));
    res.set_header("X-Deblur-Decode-Ms", fixed(decode_ms, 1));
    res.set_header("X-Deblur-Inference-Ms", fixed(inference_ms, 1));
    res.set_header("X-Deblur-Encode-Ms", fixed(encode_ms, 1));
    res.set_header("Server-Timing", "queue;dur=" + fixed(queue_ms, 1) + ", decode;dur=" +
                                        fixed(decode_ms, 1) + ", inference;dur=" +
                                        fixed(inference_ms, 1) + ", encode;dur=" +
                                        fixed(encode_ms, 1));
  } catch (const HttpError& e) {
    leave();
    res.status = e.status;
    res.set_content(json_error(e.what()), "application/json");
  } catch (const std::exception& e) {  // ours, not the client's: still only this request's
    leave();
    res.status = 500;
    res.set_content(json_error(std::string("internal error: ") + e.what()), "application/json");
  }
  record(res.status, Seconds(Clock::now() - start).count());
}

void Service::State::healthz(httplib::Response& res) {
  nlohmann::json j;
  {
    std::lock_guard<std::mutex> lock(mutex);
    j = {{"status", "ok"},
         {"model_loaded", true},
         {"in_flight", running},
         {"queue_depth", admitted - running},
         {"workers", options.workers},
         {"queue", options.queue},
         {"max_pixels", options.max_pixels},
         {"max_body_bytes", options.max_body_bytes}};
  }
  res.set_content(j.dump(), "application/json");
}

void Service::State::metrics(httplib::Response& res) {
  std::ostringstream out;
  int in_flight = 0, waiting = 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    in_flight = running;
    waiting = admitted - running;
  }
  std::lock_guard<std::mutex> lock(metrics_mutex);
  out << "# HELP deblur_requests_total Requests to /v1/deblur answered, by HTTP status.\n"
      << "# TYPE deblur_requests_total counter\n";
  for (const auto& [status, count] : requests_by_status)
    out << "deblur_requests_total{status=\"" << status << "\"} " << count << "\n";
  out << "# HELP deblur_request_duration_seconds Deblur request latency, from the whole body "
         "read to the answer ready (not requests httplib refused before the handler).\n"
      << "# TYPE deblur_request_duration_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t b = 0; b < kBucketCount; ++b) {
    cumulative += bucket_counts[b];
    out << "deblur_request_duration_seconds_bucket{le=\"" << kBuckets[b] << "\"} " << cumulative
        << "\n";
  }
  cumulative += bucket_counts[kBucketCount];
  out << "deblur_request_duration_seconds_bucket{le=\"+Inf\"} " << cumulative << "\n"
      << "deblur_request_duration_seconds_sum " << latency_sum << "\n"
      << "deblur_request_duration_seconds_count " << latency_count << "\n"
      << "# HELP deblur_in_flight Requests running the model.\n# TYPE deblur_in_flight gauge\n"
      << "deblur_in_flight " << in_flight << "\n"
      << "# HELP deblur_queue_depth Requests waiting for a worker.\n"
      << "# TYPE deblur_queue_depth gauge\ndeblur_queue_depth " << waiting << "\n"
      << "# HELP deblur_pixels_processed_total Pixels of the images deblurred.\n"
      << "# TYPE deblur_pixels_processed_total counter\n"
      << "deblur_pixels_processed_total " << pixels_processed.load() << "\n";
  res.set_content(out.str(), "text/plain; version=0.0.4");
}

Service::Service(const Predictor& predictor, ServeOptions options)
    : state_(std::make_unique<State>(predictor, std::move(options))) {
  const ServeOptions& o = state_->options;
  DEBLUR_CHECK(o.workers >= 1, "--workers must be at least 1, got ", o.workers);
  DEBLUR_CHECK(o.queue >= 0, "--queue must not be negative, got ", o.queue);
  DEBLUR_CHECK(o.max_pixels > 0 && o.max_body_bytes > 0, "--max_pixels and --max_body_mb must be "
               "positive");
  DEBLUR_CHECK(o.read_timeout_s > 0 && o.write_timeout_s > 0 && o.process_timeout_s > 0,
               "timeouts must be positive");
  httplib::Server& s = state_->server;
  DEBLUR_CHECK(o.connections >= 1, "--connections must be at least 1, got ", o.connections);
  // HTTP threads: one per connection being read or answered. At least one per admitted request
  // and a few more, so /healthz, /metrics and the 503s answer while every worker and queue slot
  // is taken; by default many more, so that slow uploads (each held at most read_timeout_s per
  // stall) do not keep others waiting.
  const size_t threads = size_t(std::max(o.connections, o.workers + o.queue + 4));
  s.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.set_payload_max_length(size_t(o.max_body_bytes));
  auto set_timeout = [](double seconds, auto setter) {
    const double whole = std::floor(seconds);
    setter(time_t(whole), time_t((seconds - whole) * 1e6));
  };
  set_timeout(o.read_timeout_s, [&](time_t sec, time_t usec) { s.set_read_timeout(sec, usec); });
  set_timeout(o.write_timeout_s, [&](time_t sec, time_t usec) { s.set_write_timeout(sec, usec); });
  s.set_default_headers({{"X-Content-Type-Options", "nosniff"}});
  State* state = state_.get();
  s.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                   "img-src blob:; connect-src 'self' blob:");
    res.set_content(kIndexHtml, "text/html; charset=utf-8");
  });
  s.Post("/v1/deblur", [state](const httplib::Request& req, httplib::Response& res) {
    state->deblur(req, res);
  });
  s.Get("/healthz", [state](const httplib::Request&, httplib::Response& res) {
    state->healthz(res);
  });
  s.Get("/metrics", [state](const httplib::Request&, httplib::Response& res) {
    state->metrics(res);
  });
  // Errors httplib answers itself (413 over --max_body_mb, 404, 400 malformed) get a JSON body too.
  s.set_error_handler([state](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (req.path == "/v1/deblur") state->record_refused(res.status);
    std::string message = detail::concat("HTTP ", res.status);
    // httplib caps form-encoded bodies at 8 KiB (curl --data-binary's default type).
    if (res.status == 413 &&
        req.get_header_value("Content-Type").find("x-www-form-urlencoded") != std::string::npos)
      message = "a body sent as application/x-www-form-urlencoded may be 8 KiB at most: send the "
                "image with its own Content-Type (image/png, image/jpeg) or "
                "application/octet-stream";
    else if (res.status == 413)
      message = detail::concat("the body is over the limit of ", state->options.max_body_bytes,
                               " bytes");
    else if (res.status == 404)
      message = "not found: this service answers POST /v1/deblur, GET /, GET /healthz and "
                "GET /metrics";
    else if (res.status == 400)
      message = "malformed HTTP request";
    res.set_content(json_error(message), "application/json");
  });
}

Service::~Service() = default;

void Service::bind() {
  State& s = *state_;
  if (s.options.port == 0)
    s.port = s.server.bind_to_any_port(s.options.host);
  else
    s.port = s.server.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1;
  DEBLUR_CHECK(s.port > 0, "cannot listen on ", s.options.host, ":", s.options.port,
               " (in use, or not an address of this machine)");
}

int Service::port() const { return state_->port; }

void Service::run() {
  if (state_->port <= 0) bind();
  state_->server.listen_after_bind();
}

void Service::stop() { state_->server.stop(); }

}  // namespace deblur::serve
