// MLflow tracking without an MLflow server: URI checks, artifact proxy paths, and how the client
// and the background tracker behave when the server is missing, overloaded or refuses. The
// real-server tests (every param, metric, artifact and model version read back through MLflow's
// own client, a server restarted mid-run) are tests/tracking/test_mlflow.py.
#include <catch2/catch.hpp>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/cli_testing.h"
#include "track/mlflow_client.h"
#include "track/run_sync.h"
#include "track/tracker.h"
#include "train/run_record.h"

namespace deblur::track {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

// A loopback port where nothing listens (bound, then released).
int closed_port() {
  httplib::Server server;
  const int port = server.bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  return port;
}

// An HTTP server on loopback answering every request with `status` and `body` after `delay_s`
// (cut short when the server stops), counting them.
class CannedServer {
 public:
  CannedServer(int status, std::string body, double delay_s = 0.0) {
    auto answer = [this, status, body, delay_s](const httplib::Request&, httplib::Response& res) {
      ++requests;
      const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(delay_s);
      while (!stopping && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      res.status = status;
      res.set_content(body, "application/json");
    };
    server_.Get(".*", answer);
    server_.Post(".*", answer);
    server_.Put(".*", answer);
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    // Bound means listening: a request before the accept loop starts waits in the backlog.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~CannedServer() {
    stopping = true;
    server_.stop();
    thread_.join();
  }
  std::string uri() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::atomic<int> requests{0};
  std::atomic<bool> stopping{false};

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// A run folder as the trainer leaves it after a finished run of one epoch.
std::string finished_run_folder(const ScratchDir& scratch) {
  const fs::path run_dir = scratch / "run";
  fs::create_directories(run_dir);
  train::RunInfo info;
  info.name = "tracked";
  info.status = "FINISHED";
  info.start_time = "2026-12-06T12:00:00Z";
  info.end_time = "2026-12-06T12:01:00Z";
  info.device = "cpu";
  info.epochs = 1;
  train::write_run_info((run_dir / "run.json").string(), info);
  std::ofstream(run_dir / "params.json") << R"({"batch_size": 2, "device": "cpu"})";
  std::ofstream(run_dir / "metrics.csv")
      << "epoch,step,lr,train_loss,val_loss,val_psnr,val_ssim,timestamp_ms\n"
      << "1,2,0.0002,0.5,0.6,21.5,0.7,1796559299423\n";
  return run_dir.string();
}

HttpTimeouts quick() {
  HttpTimeouts t;
  t.connect_s = 1.0;
  t.read_s = 2.0;
  t.write_s = 2.0;
  return t;
}

// The error of a call to a server that answers every request with `status` and MLflow's error
// body (`code`, `message`).
MlflowError error_answered(int status, const std::string& code, const std::string& message) {
  CannedServer server(status, R"({"error_code": ")" + code + R"(", "message": ")" + message + "\"}");
  MlflowClient client(server.uri(), quick());
  try {
    client.update_run("r", "FINISHED", 0);
  } catch (const MlflowError& e) {
    return e;
  }
  FAIL("HTTP " << status << " was taken for an answer");
  throw std::logic_error("unreachable");
}

TEST_CASE("tracking: only http(s) tracking URIs, and the refusal names the URI", "[tracking]") {
  CHECK_NOTHROW(check_tracking_uri("http://127.0.0.1:5000"));
  CHECK_NOTHROW(check_tracking_uri("https://mlflow.example.org/prefix/"));
  CHECK_NOTHROW(check_tracking_uri("http://[::1]:5000"));
  for (const char* uri : {"file:./mlruns", "sqlite:///mlflow.db", "databricks", "http://", "http:///x",
                          "http://host:99999999999", "http://host:0", "http://host:5o00",
                          "http://user:secret@host:5000"})
    CHECK_THROWS_WITH(check_tracking_uri(uri), Catch::Contains(std::string("'") + uri + "'"));
}

TEST_CASE("tracking: artifacts go through the server's artifact proxy", "[tracking]") {
  const std::string expected = "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/deblur_model/MLmodel";
  CHECK(artifact_proxy_path("mlflow-artifacts:/1/abc/artifacts", "deblur_model/MLmodel") == expected);
  CHECK(artifact_proxy_path("mlflow-artifacts://host:5000/1/abc/artifacts/", "/deblur_model/MLmodel") ==
        expected);
  CHECK(artifact_proxy_path("mlflow-artifacts:/1/abc/artifacts", "a b#.png") ==
        "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/a%20b%23.png");
  try {
    artifact_proxy_path("s3://bucket/1/abc/artifacts", "metrics.csv");
    FAIL("an s3 artifact root was accepted");
  } catch (const MlflowError& e) {
    CHECK_FALSE(e.retryable());
    CHECK_THAT(e.what(), Catch::Contains("s3://bucket") && Catch::Contains("--serve-artifacts"));
  }
}

TEST_CASE("tracking: a server that is not there, or overloaded, is worth retrying, a refusal not",
          "[tracking]") {
  SECTION("nothing listening") {
    MlflowClient client("http://127.0.0.1:" + std::to_string(closed_port()), quick());
    try {
      client.experiment_id("deblur");
      FAIL("no error without a server");
    } catch (const MlflowError& e) {
      CHECK(e.retryable());
      CHECK_THAT(e.what(), Catch::Contains("experiments/get-by-name"));
    }
  }
  SECTION("503 with MLflow's error body") {
    const MlflowError e = error_answered(503, "TEMPORARILY_UNAVAILABLE", "busy");
    CHECK(e.retryable());
    CHECK(e.error_code() == "TEMPORARILY_UNAVAILABLE");
    CHECK_THAT(e.what(), Catch::Contains("HTTP 503") && Catch::Contains("busy"));
  }
  SECTION("403") {
    const MlflowError e = error_answered(403, "PERMISSION_DENIED", "no");
    CHECK_FALSE(e.retryable());
    CHECK(e.error_code() == "PERMISSION_DENIED");
  }
}

TEST_CASE("tracking: a dead server costs the run at most the wait, with one warning and a way on",
          "[tracking]") {
  ScratchDir scratch;
  const std::string run_dir = finished_run_folder(scratch);
  TrackerOptions options;
  options.tracking_uri = "http://127.0.0.1:" + std::to_string(closed_port());
  options.sync.registered_model_name = "deblur_owed";
  options.timeouts = quick();
  options.finish_wait_s = 2.0;
  std::vector<std::string> lines;
  std::mutex lines_mutex;
  const auto start = std::chrono::steady_clock::now();
  {
    Tracker tracker(options, run_dir, [&](const std::string& line) {
      std::lock_guard<std::mutex> lock(lines_mutex);
      lines.push_back(line);
    });
    for (int i = 0; i < 5; ++i) tracker.notify();
    CHECK_FALSE(tracker.finish());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(seconds < 2.0 + 2 * quick().connect_s + 1.0);  // the wait, plus a request in flight
  int warnings = 0, hints = 0;
  for (const std::string& line : lines) {
    warnings += line.find("is not answering") != std::string::npos;
    hints += line.find("deblur runs push " + run_dir) != std::string::npos;
  }
  CHECK(warnings == 1);
  CHECK(hints == 1);
  // What is owed is on disk for `deblur runs push`: the model name, for whichever server.
  std::ifstream ledger(fs::path(run_dir) / "mlflow.json");
  const nlohmann::json saved = nlohmann::json::parse(ledger);
  CHECK(saved.value("registered_model_name", "") == "deblur_owed");
  CHECK_FALSE(saved["servers"][options.tracking_uri].contains("run_id"));
}

TEST_CASE("tracking: a server that never finishes its answer is cut off at the end of the wait",
          "[tracking]") {
  ScratchDir scratch;
  const std::string run_dir = finished_run_folder(scratch);
  CannedServer server(200, "{}", 60.0);
  TrackerOptions options;
  options.tracking_uri = server.uri();
  options.timeouts.read_s = 60.0;  // the cancel, not the timeout, must end the request
  options.finish_wait_s = 1.0;
  std::vector<std::string> lines;
  std::mutex lines_mutex;
  const auto start = std::chrono::steady_clock::now();
  Tracker tracker(options, run_dir, [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(lines_mutex);
    lines.push_back(line);
  });
  tracker.notify();
  CHECK_FALSE(tracker.finish());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(seconds < 5.0);
  CHECK(server.requests >= 1);
  REQUIRE_FALSE(lines.empty());
  CHECK_THAT(lines.back(), Catch::Contains("deblur runs push"));
}

TEST_CASE("tracking: a server that refuses stops tracking once, without retrying", "[tracking]") {
  ScratchDir scratch;
  const std::string run_dir = finished_run_folder(scratch);
  CannedServer server(403, R"({"error_code": "PERMISSION_DENIED", "message": "read-only"})");
  TrackerOptions options;
  options.tracking_uri = server.uri();
  options.timeouts = quick();
  options.finish_wait_s = 5.0;
  std::vector<std::string> lines;
  std::mutex lines_mutex;
  Tracker tracker(options, run_dir, [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(lines_mutex);
    lines.push_back(line);
  });
  tracker.notify();
  CHECK_FALSE(tracker.finish());
  CHECK(server.requests == 1);
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], Catch::Contains("refused") && Catch::Contains("read-only") &&
                           Catch::Contains("deblur runs push"));
}

TEST_CASE("tracking: a folder that is not a run is an error naming it", "[tracking]") {
  ScratchDir scratch;
  MlflowClient client("http://127.0.0.1:" + std::to_string(closed_port()), quick());
  CHECK_THROWS_WITH(RunSync(client, scratch.path().string(), {}),
                    Catch::Contains(scratch.path().string()) && Catch::Contains("run.json"));
}

}  // namespace
}  // namespace deblur::track
