// `deblur serve`: the seed's CPU deployment as an HTTP service on cpp-httplib, safe to expose to
// untrusted uploads.
//
//   POST /v1/deblur   body: the image bytes (PNG, JPEG, BMP). Answers the deblurred image,
//                     PNG, or JPEG with ?format=jpeg or an Accept header preferring image/jpeg;
//                     timing headers X-Deblur-{Upload,Queue,Decode,Inference,Encode}-Ms and
//                     Server-Timing. Errors are JSON {"error": ...}: 400 unsupported or corrupt
//                     image, 408 an upload that stalls or takes too long, 413 body or pixel
//                     count over the limit (pixels from the header, before any decoding), 503 +
//                     Retry-After when the queue is full or the processing time runs out, 500
//                     otherwise.
//   GET /             a small web page (serve/index.html): choose or drop an image, see it and
//                     the deblurred result side by side, download the result.
//   GET /healthz      {"status": "ok", "model_loaded": true, "queue_depth", "in_flight", limits}
//   GET /metrics      Prometheus text: requests by status, a latency histogram, in-flight,
//                     queue depth, pixels processed.
//
// Concurrency: `workers` requests run the model at once, sharing the CPU threads; up to `queue`
// more wait for a worker; beyond that a request is refused at once (503). A request holds a
// worker only while its image is decoded, deblurred and encoded: the body is read first (at
// most max_body_bytes, however it is sent: with a length, chunked or until the connection
// closes; a stall of read_timeout_s or a whole upload over upload_timeout_s ends it) and the
// answer written after, so a slow client holds one of the `connections` HTTP threads, never a
// worker. Errors in one request never reach another. stop() (SIGTERM, Ctrl-C in the CLI) stops
// accepting, lets the requests already in the server finish, and returns from run(); a stop()
// before run() makes run() return at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "infer/predictor.h"

namespace deblur::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;          // 0: any free port (port() says which)
  int workers = 1;          // requests running the model at once
  int queue = 8;            // requests waiting for a worker
  int connections = 64;     // connections served at once (at least workers + queue + 4)
  int64_t max_pixels = 4096LL * 4096;
  int64_t max_body_bytes = 50LL << 20;
  double read_timeout_s = 30.0;      // per read of a request; a stalled upload is dropped
  double upload_timeout_s = 120.0;   // a whole request body
  double write_timeout_s = 30.0;
  double process_timeout_s = 300.0;  // queue wait plus processing, per request
  int jpeg_quality = 95;
};

class Service {
 public:
  // `predictor` runs the model; it must outlive the service.
  Service(const Predictor& predictor, ServeOptions options);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Binds host:port (an error naming them if it cannot); after this, port() is known.
  void bind();
  int port() const;
  // Serves until stop(); returns once the requests in the server have been answered.
  void run();
  // From any thread (or a signal-waiting thread): stop accepting and drain.
  void stop();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace deblur::serve
