// A client for the MLflow tracking server's REST API (MLflow 2.x and 3.x): experiments, runs,
// batched params/metrics/tags, artifacts through the server's artifact proxy
// (`mlflow server`'s default --serve-artifacts), registered models and model versions. No
// Python: plain HTTP(S) with JSON bodies. Credentials come from MLflow's own environment
// variables, MLFLOW_TRACKING_TOKEN (bearer) or MLFLOW_TRACKING_USERNAME and _PASSWORD (basic).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/check.h"

namespace deblur::track {

// A call that failed. retryable(): the server could not be reached, timed out or answered 429 or
// 5xx, so the same call may succeed later; otherwise the server refused the request itself (an
// MLflow 4xx: bad value, missing resource, no permission), and sending it again will not help.
class MlflowError : public Error {
 public:
  MlflowError(const std::string& message, bool retryable, std::string error_code = "")
      : Error(message), retryable_(retryable), error_code_(std::move(error_code)) {}
  bool retryable() const { return retryable_; }
  // MLflow's error_code (RESOURCE_ALREADY_EXISTS, ...); empty when there was no MLflow answer.
  const std::string& error_code() const { return error_code_; }

 private:
  bool retryable_;
  std::string error_code_;
};

struct HttpTimeouts {
  double connect_s = 5.0;
  double read_s = 30.0;   // per read: a server that stops answering is given up on
  double write_s = 60.0;  // per write: uploads stream the file in chunks
};

struct MlflowMetric {
  std::string key;
  double value = 0.0;
  int64_t timestamp_ms = 0;
  int64_t step = 0;
};

using Tags = std::map<std::string, std::string>;

struct MlflowRun {
  std::string run_id;
  std::string artifact_uri;  // mlflow-artifacts:/<experiment>/<run>/artifacts when proxied
  std::string status;
  Tags tags;
};

struct ModelVersion {
  std::string name, version, source, run_id;
  Tags tags;
};

// The tracking URI checked: http:// or https:// with a host; anything else (file:, sqlite:,
// databricks) is an error saying why, since those need MLflow's Python client.
void check_tracking_uri(const std::string& uri);

// Whether a run's artifact root is the server's artifact proxy (mlflow-artifacts:), the only
// root this client can upload to.
bool proxied_artifact_root(const std::string& artifact_uri);

// The path under the artifact proxy (/api/2.0/mlflow-artifacts/artifacts/<path>) of an artifact
// `relative_path` of a run whose artifact root is `artifact_uri`. Throws MlflowError (not
// retryable) when the root is not an mlflow-artifacts: URI: that server does not proxy artifacts.
std::string artifact_proxy_path(const std::string& artifact_uri, const std::string& relative_path);

class MlflowClient {
 public:
  explicit MlflowClient(const std::string& tracking_uri, const HttpTimeouts& timeouts = {});
  ~MlflowClient();
  MlflowClient(const MlflowClient&) = delete;
  MlflowClient& operator=(const MlflowClient&) = delete;

  const std::string& uri() const { return uri_; }

  // From any thread: the request in flight fails at once, and so does every later one
  // (a retryable MlflowError saying "cancelled"). For giving up on a server that drips.
  void cancel();

  // The id of the named experiment, created if missing (a concurrent creator is no error).
  std::string experiment_id(const std::string& name);

  MlflowRun create_run(const std::string& experiment_id, const std::string& run_name,
                       int64_t start_time_ms, const Tags& tags);
  // Runs of the experiment whose tag `key` is `value` (at most 10).
  std::vector<MlflowRun> find_runs_by_tag(const std::string& experiment_id,
                                          const std::string& key, const std::string& value);
  // Params, metrics and tags in as many log-batch calls as MLflow's limits need (1000 items,
  // at most 100 of them params and 100 tags, per call). Logging a metric already logged with the same step,
  // timestamp and value again is a no-op on a server with a database store (mlflow server's
  // SQLAlchemy store), so a batch can be resent safely.
  void log_batch(const std::string& run_id, const std::vector<MlflowMetric>& metrics,
                 const Tags& params, const Tags& tags);
  // status: RUNNING, FINISHED, FAILED or KILLED; end_time_ms 0 leaves it unset.
  void update_run(const std::string& run_id, const std::string& status, int64_t end_time_ms);

  // Streams the local file to the run's artifact `relative_path` (a/b/name) through the proxy.
  void upload_artifact(const std::string& artifact_uri, const std::string& relative_path,
                       const std::string& local_path);

  void create_registered_model_if_missing(const std::string& name);
  ModelVersion create_model_version(const std::string& name, const std::string& source,
                                    const std::string& run_id, const std::string& description,
                                    const Tags& tags);
  // The registered model's versions made from the run.
  std::vector<ModelVersion> find_model_versions(const std::string& name,
                                                const std::string& run_id);

 private:
  struct Http;
  std::string get_json(const std::string& endpoint, const std::string& query);
  std::string post_json(const std::string& endpoint, const std::string& body);

  void check_not_cancelled(const std::string& what) const;

  std::string uri_;
  std::unique_ptr<Http> http_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace deblur::track
