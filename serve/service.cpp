// The HTTP inference service on cpp-httplib (serve/service.h).
#include "serve/service.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/check.h"
#include "infer/image_io.h"
#include "kernels/cpu/parallel.h"
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

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(Seconds(s));
}

std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

// The quality an Accept header gives `type` (image/png, image/jpeg): its own entry's q, else
// image/*'s, else */*'s; -1 when none names it.
double accept_quality(const std::string& accept, const std::string& type) {
  double exact = -1, images = -1, any = -1;
  size_t begin = 0;
  while (begin <= accept.size()) {
    const size_t end = std::min(accept.find(',', begin), accept.size());
    const std::string entry = accept.substr(begin, end - begin);
    begin = end + 1;
    const size_t semicolon = entry.find(';');
    std::string range = entry.substr(0, semicolon);
    range.erase(std::remove(range.begin(), range.end(), ' '), range.end());
    double q = 1.0;
    const size_t q_at = entry.find("q=", semicolon == std::string::npos ? entry.size() : semicolon);
    if (q_at != std::string::npos) q = std::atof(entry.c_str() + q_at + 2);
    if (range == type) exact = q;
    else if (range == "image/*") images = q;
    else if (range == "*/*") any = q;
  }
  return exact >= 0 ? exact : images >= 0 ? images : any;
}

// PNG unless ?format=jpeg, or an Accept header that prefers image/jpeg to image/png (by
// quality; PNG on a tie).
ImageFormat answer_format(const httplib::Request& req) {
  if (req.has_param("format")) {
    const std::string format = req.get_param_value("format");
    if (format == "png") return ImageFormat::PNG;
    if (format == "jpeg" || format == "jpg") return ImageFormat::JPEG;
    throw HttpError(400, "format '" + format + "': png or jpeg");
  }
  const std::string accept = req.get_header_value("Accept");
  return accept_quality(accept, "image/jpeg") > std::max(0.0, accept_quality(accept, "image/png"))
             ? ImageFormat::JPEG
             : ImageFormat::PNG;
}

}  // namespace

struct Service::State {
  State(const Predictor& p, ServeOptions o)
      : predictor(p),
        options(std::move(o)),
        threads_per_worker(std::max(1, cpu::num_threads() / options.workers)) {}

  const Predictor& predictor;
  ServeOptions options;
  // The CPU threads (--threads, set on the constructing thread) shared out among the workers.
  int threads_per_worker;
  httplib::Server server;
  int port = 0;

  // stop() before run() has started listening (a signal during start-up) is kept for run().
  std::mutex run_mutex;
  std::condition_variable run_changed;
  bool stop_requested = false, running_server = false, run_ended = false;

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

  // A request to /v1/deblur that httplib refused before the handler (a malformed request):
  // counted by status, outside the latency histogram.
  void record_refused(int status) {
    std::lock_guard<std::mutex> lock(metrics_mutex);
    ++requests_by_status[status];
  }

  std::string read_body(const httplib::Request& req, httplib::Response& res,
                        const httplib::ContentReader& reader, Clock::time_point deadline);
  void deblur(const httplib::Request& req, httplib::Response& res,
              const httplib::ContentReader& reader);
  void healthz(httplib::Response& res);
  void metrics(httplib::Response& res);
};

// The request body through `reader`, within the body limit and the upload timeout. Reading it
// here, not in httplib, is what bounds chunked uploads and those without a length too.
std::string Service::State::read_body(const httplib::Request& req, httplib::Response& res,
                                      const httplib::ContentReader& reader,
                                      Clock::time_point deadline) {
  // A body refused before its end: the rest of it is never read, so the connection closes.
  auto refuse = [&res](int status, const std::string& message) {
    res.set_header("Connection", "close");
    return HttpError(status, message);
  };
  auto over_limit = [this] {
    return detail::concat("the body is over the limit of ", options.max_body_bytes, " bytes");
  };
  if (req.has_header("Content-Length") &&
      std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10) >
          uint64_t(options.max_body_bytes))
    throw refuse(413, over_limit() + " (Content-Length)");
  // A body without either ends only when the client closes its side, and then the answer
  // cannot be sent.
  std::string encoding = req.get_header_value("Transfer-Encoding");
  std::transform(encoding.begin(), encoding.end(), encoding.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  if (!req.has_header("Content-Length") && encoding != "chunked")
    throw refuse(411, "send the body with a Content-Length or Transfer-Encoding: chunked");
  // httplib would parse a multipart body as a form, for which this route has no handler.
  if (req.get_header_value("Content-Type").find("multipart/form-data") != std::string::npos)
    throw refuse(400, "a multipart form: POST the image bytes themselves as the body "
                      "(curl --data-binary @image.png), not a form (curl -F)");
  std::string body;
  bool too_large = false, too_slow = false;
  const bool complete = reader([&](const char* data, size_t size) {
    too_large = body.size() + size > size_t(options.max_body_bytes);
    too_slow = Clock::now() > deadline;
    if (too_large || too_slow) return false;
    body.append(data, size);
    return true;
  });
  if (too_large) throw refuse(413, over_limit());
  if (too_slow)
    throw refuse(408, detail::concat("the upload took longer than ", options.upload_timeout_s,
                                     " s"));
  if (!complete)
    throw refuse(408, detail::concat("the upload stalled for ", options.read_timeout_s,
                                     " s or ended before its length"));
  if (body.empty()) throw HttpError(400, "empty body: POST the image bytes");
  return body;
}

void Service::State::deblur(const httplib::Request& req, httplib::Response& res,
                            const httplib::ContentReader& reader) {
  const auto start = Clock::now();
  bool admitted_here = false, running_here = false;
  auto leave = [&] {
    std::lock_guard<std::mutex> lock(mutex);
    if (running_here) --running;
    if (admitted_here) --admitted;
    running_here = admitted_here = false;
    worker_free.notify_one();
  };
  try {
    const ImageFormat format = answer_format(req);  // before the upload: a bad ?format costs none
    const std::string body = read_body(req, res, reader, start + seconds(options.upload_timeout_s));
    const auto uploaded = Clock::now();
    const auto deadline = uploaded + seconds(options.process_timeout_s);
    const auto* bytes_in = reinterpret_cast<const uint8_t*>(body.data());
    // The header first: an unsupported file or too many pixels costs no decoding.
    ImageInfo info;
    try {
      info = probe_image(bytes_in, body.size(), "the request body");
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
      if (admitted >= options.workers + options.queue)
        throw HttpError(503, detail::concat("busy: ", running, " running and ",
                                            admitted - running, " waiting; try again shortly"));
      ++admitted;
      admitted_here = true;
      if (!worker_free.wait_until(lock, deadline, [&] { return running < options.workers; }))
        throw HttpError(503, "waited longer than the processing timeout for a worker");
      ++running;
      running_here = true;
    }
    // This thread's share of the CPU threads (an OpenMP setting is per calling thread).
    cpu::set_num_threads(threads_per_worker);
    const auto started = Clock::now();
    Image image;
    try {
      image = decode_image(bytes_in, body.size(), "the request body", options.max_pixels);
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
    const std::pair<const char*, double> phases[] = {
        {"Upload", ms(uploaded - start)},     {"Queue", ms(started - uploaded)},
        {"Decode", ms(decoded - started)},    {"Inference", ms(inferred - decoded)},
        {"Encode", ms(encoded - inferred)}};
    std::string server_timing;
    for (const auto& [name, value] : phases) {
      res.set_header(std::string("X-Deblur-") + name + "-Ms", fixed(value, 1));
      std::string metric = name;
      metric[0] = char(std::tolower(metric[0]));
      server_timing += (server_timing.empty() ? "" : ", ") + metric + ";dur=" + fixed(value, 1);
    }
    res.set_header("Server-Timing", server_timing);
  } catch (const HttpError& e) {
    leave();
    res.status = e.status;
    if (e.status == 503) res.set_header("Retry-After", "1");
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
  out << "# HELP deblur_request_duration_seconds Deblur request latency, from the request's "
         "headers read (upload included) to the answer ready.\n"
      << "# TYPE deblur_request_duration_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t b = 0; b < kBucketCount; ++b) {
    cumulative += bucket_counts[b];
    out << "deblur_request_duration_seconds_bucket{le=\"" << kBuckets[b] << "\"} " << cumulative
        << "\n";
  }
  cumulative += bucket_counts[kBucketCount];
  out << "deblur_request_duration_seconds_bucket{le=\"+Inf\"} " << cumulative << "\n"
      << "deblur_request_duration_seconds_sum " << std::setprecision(17) << latency_sum
      << std::setprecision(6) << "\n"
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
  DEBLUR_CHECK(o.read_timeout_s > 0 && o.write_timeout_s > 0 && o.upload_timeout_s > 0 &&
                   o.process_timeout_s > 0,
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
    // Nothing from elsewhere, no framing. connect-src blob: lets the page read back its own
    // result (same-origin by nature; tests/serve/test_page.py checks the bytes through it).
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                   "img-src blob:; connect-src 'self' blob:; base-uri 'none'; form-action 'none'; "
                   "frame-ancestors 'none'");
    res.set_content(kIndexHtml, "text/html; charset=utf-8");
  });
  s.Post("/v1/deblur", [state](const httplib::Request& req, httplib::Response& res,
                               const httplib::ContentReader& reader) {
    state->deblur(req, res, reader);
  });
  s.Get("/healthz", [state](const httplib::Request&, httplib::Response& res) {
    state->healthz(res);
  });
  s.Get("/metrics", [state](const httplib::Request&, httplib::Response& res) {
    state->metrics(res);
  });
  // Errors httplib answers itself (404, 400 malformed, 413 for a body on another route) get a
  // JSON body too.
  s.set_error_handler([state](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (req.path == "/v1/deblur") state->record_refused(res.status);
    std::string message = detail::concat("HTTP ", res.status);
    if (res.status == 413)
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
  State& s = *state_;
  if (s.port <= 0) bind();
  {
    std::lock_guard<std::mutex> lock(s.run_mutex);
    if (s.stop_requested) return;
    s.running_server = true;
  }
  // httplib's stop() acts only once listen_after_bind() is running: stop() waits for that.
  struct Ended {
    State& s;
    ~Ended() {
      std::lock_guard<std::mutex> lock(s.run_mutex);
      s.run_ended = true;
      s.run_changed.notify_all();
    }
  } ended{s};
  DEBLUR_CHECK(s.server.listen_after_bind(), "serving on ", s.options.host, ":", s.port,
               " failed");
}

void Service::stop() {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.run_mutex);
  s.stop_requested = true;
  if (!s.running_server) return;  // run() has not begun: it will not
  while (!s.run_ended && !s.server.is_running())
    s.run_changed.wait_for(lock, std::chrono::milliseconds(10));
  if (!s.run_ended) s.server.stop();
}

}  // namespace deblur::serve
