// MLflow's REST API over cpp-httplib (track/mlflow_client.h).
#include "track/mlflow_client.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

namespace deblur::track {

namespace {

using nlohmann::json;

constexpr const char* kApi = "/api/2.0/mlflow/";
constexpr const char* kArtifactApi = "/api/2.0/mlflow-artifacts/artifacts";
constexpr const char* kArtifactScheme = "mlflow-artifacts:";
// MLflow's log-batch limits (mlflow/utils/validation.py): 1000 items in all (metrics up to 1000),
// of which at most 100 params and 100 tags.
constexpr size_t kMaxItemsPerBatch = 1000, kMaxParamsPerBatch = 100, kMaxTagsPerBatch = 100;

// Percent-encodes everything but RFC 3986's unreserved characters, and '/' when keep_slash.
std::string url_encode(const std::string& text, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += char(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// A string literal of MLflow's search filter grammar, for the ids this client searches by (hex):
// MLflow strips the quotes and undoes no escapes, so a quote inside cannot be searched for.
std::string filter_string(const std::string& value) {
  if (value.find('\'') != std::string::npos)
    throw MlflowError("cannot search MLflow for a value with a quote in it: " + value, false);
  return "'" + value + "'";
}

struct SplitUri {
  std::string scheme_host_port;  // http://host:port
  std::string prefix;            // a path the server is mounted under, without the final '/'
};

SplitUri split_uri(const std::string& uri) {
  const size_t scheme_end = uri.find("://");
  const size_t path_start = uri.find('/', scheme_end + 3);
  SplitUri split;
  split.scheme_host_port = uri.substr(0, path_start);
  if (path_start != std::string::npos) split.prefix = uri.substr(path_start);
  while (!split.prefix.empty() && split.prefix.back() == '/') split.prefix.pop_back();
  return split;
}

// A request body; text that is not UTF-8 (a path, a user name) is sent with U+FFFD in its place
// rather than failing the call.
std::string to_text(const json& body) {
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

json parse_answer(const std::string& body, const std::string& what) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw MlflowError(what + ": the answer is not a JSON object: '" + body.substr(0, 200) + "'",
                      false);
  return j;
}

// answer[key], an object; a missing one means the server is not the MLflow this client knows.
const json& field(const json& answer, const char* key, const std::string& what) {
  const auto it = answer.find(key);
  if (it == answer.end() || !it->is_object())
    throw MlflowError(what + ": no '" + key + "' object in the answer: '" +
                          answer.dump().substr(0, 200) + "'",
                      false);
  return *it;
}

Tags tags_from(const json& list) {
  Tags tags;
  if (list.is_array())
    for (const json& tag : list) tags[tag.value("key", "")] = tag.value("value", "");
  return tags;
}

json tags_to(const Tags& tags) {
  json list = json::array();
  for (const auto& [key, value] : tags) list.push_back({{"key", key}, {"value", value}});
  return list;
}

MlflowRun run_from(const json& run) {
  const json& info = field(run, "info", "run");
  MlflowRun r;
  r.run_id = info.value("run_id", info.value("run_uuid", ""));
  r.artifact_uri = info.value("artifact_uri", "");
  r.status = info.value("status", "");
  if (run.contains("data")) r.tags = tags_from(run["data"].value("tags", json::array()));
  return r;
}

ModelVersion version_from(const json& v) {
  ModelVersion m;
  m.name = v.value("name", "");
  m.version = v.value("version", "");
  m.source = v.value("source", "");
  m.run_id = v.value("run_id", "");
  m.tags = tags_from(v.value("tags", json::array()));
  return m;
}

// What went wrong below HTTP, in words; every one of these may pass.
std::string transport_error(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "cannot connect (nothing listening there, or the host is unreachable)";
    case httplib::Error::ConnectionTimeout:
      return "no connection within the connect timeout";
    case httplib::Error::Read:
      return "no complete answer (the connection broke, or the read timeout passed)";
    case httplib::Error::Write:
      return "the request could not be sent whole (the connection broke, or the write timeout "
             "passed)";
    default:
      return "HTTP client error: " + httplib::to_string(error);
  }
}

}  // namespace

struct MlflowClient::Http {
  explicit Http(const SplitUri& split) : client(split.scheme_host_port), prefix(split.prefix) {}
  httplib::Client client;
  std::string prefix;

  // Throws MlflowError unless the call got a 2xx answer; returns its body.
  std::string checked(const httplib::Result& result, const std::string& what) const {
    if (!result) throw MlflowError(what + ": " + transport_error(result.error()), true);
    const int status = result->status;
    if (status >= 200 && status < 300) return result->body;
    const json answer = json::parse(result->body, nullptr, false);
    std::string code, message = result->body.substr(0, 300);
    if (answer.is_object()) {
      code = answer.value("error_code", "");
      message = answer.value("message", message);
    }
    const bool retryable = status == 408 || status == 429 || status >= 500;
    throw MlflowError(detail::concat(what, ": HTTP ", status, code.empty() ? "" : " ", code, ": ",
                                     message),
                      retryable, code);
  }
};

void check_tracking_uri(const std::string& uri) {
  const bool http = uri.rfind("http://", 0) == 0 || uri.rfind("https://", 0) == 0;
  DEBLUR_CHECK(http, "tracking URI '", uri, "': deblur talks to an MLflow tracking server over "
               "its REST API, so the URI must be http://host:port or https://... (file:, sqlite: "
               "and other stores need MLflow's Python client; start `mlflow server` on them "
               "instead)");
  const size_t host_start = uri.find("://") + 3;
  const std::string authority = uri.substr(host_start, uri.find('/', host_start) - host_start);
  DEBLUR_CHECK(!authority.empty() && authority.front() != ':', "tracking URI '", uri,
               "': no host");
  DEBLUR_CHECK(authority.find('@') == std::string::npos, "tracking URI '", uri, "': put the "
               "credentials in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
               "MLFLOW_TRACKING_TOKEN), not in the URI");
  const size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.back() != ']') {  // not an IPv6 literal's
    const std::string port = authority.substr(colon + 1);
    const bool digits = !port.empty() && port.size() <= 5 &&
                        std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    DEBLUR_CHECK(digits && std::stoi(port) >= 1 && std::stoi(port) <= 65535, "tracking URI '", uri,
                 "': the port must be a number from 1 to 65535");
  }
}

bool proxied_artifact_root(const std::string& artifact_uri) {
  return artifact_uri.rfind(kArtifactScheme, 0) == 0;
}

std::string artifact_proxy_path(const std::string& artifact_uri,
                                const std::string& relative_path) {
  if (!proxied_artifact_root(artifact_uri))
    throw MlflowError("the run's artifact root is '" + artifact_uri + "', not an " +
                          kArtifactScheme + " URI: this server does not proxy artifacts (start "
                          "`mlflow server` with --serve-artifacts, its default)",
                      false);
  // mlflow-artifacts:/<path> or mlflow-artifacts://host:port/<path>.
  std::string path = artifact_uri.substr(std::string(kArtifactScheme).size());
  if (path.rfind("//", 0) == 0) {
    const size_t slash = path.find('/', 2);
    path = slash == std::string::npos ? "" : path.substr(slash);
  }
  while (!path.empty() && path.front() == '/') path.erase(path.begin());
  while (!path.empty() && path.back() == '/') path.pop_back();
  std::string relative = relative_path;
  while (!relative.empty() && relative.front() == '/') relative.erase(relative.begin());
  std::string proxy = std::string(kArtifactApi) + "/" + url_encode(path, true);
  if (!relative.empty()) proxy.append("/").append(url_encode(relative, true));
  return proxy;
}

MlflowClient::MlflowClient(const std::string& tracking_uri, const HttpTimeouts& timeouts)
    : uri_(tracking_uri) {
  check_tracking_uri(tracking_uri);
  while (uri_.back() == '/') uri_.pop_back();
  http_ = std::make_unique<Http>(split_uri(tracking_uri));
  auto set = [](double seconds, auto setter) {
    const double whole = std::floor(seconds);
    setter(time_t(whole), time_t((seconds - whole) * 1e6));
  };
  httplib::Client& c = http_->client;
  set(timeouts.connect_s, [&](time_t s, time_t us) { c.set_connection_timeout(s, us); });
  set(timeouts.read_s, [&](time_t s, time_t us) { c.set_read_timeout(s, us); });
  set(timeouts.write_s, [&](time_t s, time_t us) { c.set_write_timeout(s, us); });
  c.set_keep_alive(true);
  c.set_url_encode(false);  // paths and queries are encoded here
  if (const char* token = std::getenv("MLFLOW_TRACKING_TOKEN"); token && *token) {
    c.set_bearer_token_auth(token);
  } else if (const char* user = std::getenv("MLFLOW_TRACKING_USERNAME"); user && *user) {
    const char* password = std::getenv("MLFLOW_TRACKING_PASSWORD");
    c.set_basic_auth(user, password ? password : "");
  }
}

MlflowClient::~MlflowClient() = default;

void MlflowClient::cancel() {
  cancelled_ = true;
  http_->client.stop();  // shuts the socket of a request in flight
}

void MlflowClient::check_not_cancelled(const std::string& what) const {
  if (cancelled_) throw MlflowError(what + ": cancelled", true);
}

std::string MlflowClient::get_json(const std::string& endpoint, const std::string& query) {
  check_not_cancelled(endpoint);
  const std::string path = http_->prefix + kApi + endpoint + (query.empty() ? "" : "?" + query);
  return http_->checked(http_->client.Get(path), "GET " + uri_ + kApi + endpoint);
}

std::string MlflowClient::post_json(const std::string& endpoint, const std::string& body) {
  check_not_cancelled(endpoint);
  return http_->checked(http_->client.Post(http_->prefix + kApi + endpoint, body,
                                           "application/json"),
                        "POST " + uri_ + kApi + endpoint);
}

std::string MlflowClient::experiment_id(const std::string& name) {
  const std::string query = "experiment_name=" + url_encode(name, false);
  for (int attempt = 0;; ++attempt) {
    try {
      const json answer = parse_answer(get_json("experiments/get-by-name", query), name);
      const json& experiment = field(answer, "experiment", name);
      if (experiment.value("lifecycle_stage", "active") != "active")
        throw MlflowError("experiment '" + name + "' is deleted on " + uri_ + ": restore it, or "
                          "choose another --experiment_name", false);
      return experiment.value("experiment_id", "");
    } catch (const MlflowError& e) {
      if (e.error_code() != "RESOURCE_DOES_NOT_EXIST" || attempt > 0) throw;
    }
    try {
      const json answer = parse_answer(post_json("experiments/create", to_text(json{{"name", name}})),
                                       name);
      return answer.value("experiment_id", "");
    } catch (const MlflowError& e) {
      if (e.error_code() != "RESOURCE_ALREADY_EXISTS") throw;  // created meanwhile: look again
    }
  }
}

MlflowRun MlflowClient::create_run(const std::string& experiment_id, const std::string& run_name,
                                   int64_t start_time_ms, const Tags& tags) {
  json body = {{"experiment_id", experiment_id}, {"start_time", start_time_ms},
               {"tags", tags_to(tags)}};
  if (!run_name.empty()) body["run_name"] = run_name;
  const json answer = parse_answer(post_json("runs/create", to_text(body)), "runs/create");
  return run_from(field(answer, "run", "runs/create"));
}

std::vector<MlflowRun> MlflowClient::find_runs_by_tag(const std::string& experiment_id,
                                                      const std::string& key,
                                                      const std::string& value) {
  const json body = {{"experiment_ids", {experiment_id}},
                     {"filter", "tags.`" + key + "` = " + filter_string(value)},
                     {"max_results", 10}};
  const json answer = parse_answer(post_json("runs/search", to_text(body)), "runs/search");
  std::vector<MlflowRun> runs;
  for (const json& run : answer.value("runs", json::array())) runs.push_back(run_from(run));
  return runs;
}

void MlflowClient::log_batch(const std::string& run_id, const std::vector<MlflowMetric>& metrics,
                             const Tags& params, const Tags& tags) {
  auto m = metrics.begin();
  auto p = params.begin();
  auto t = tags.begin();
  while (m != metrics.end() || p != params.end() || t != tags.end()) {
    json body = {{"run_id", run_id}, {"metrics", json::array()}, {"params", json::array()},
                 {"tags", json::array()}};
    for (size_t n = 0; p != params.end() && n < kMaxParamsPerBatch; ++p, ++n)
      body["params"].push_back({{"key", p->first}, {"value", p->second}});
    for (size_t n = 0; t != tags.end() && n < kMaxTagsPerBatch; ++t, ++n)
      body["tags"].push_back({{"key", t->first}, {"value", t->second}});
    const size_t room = kMaxItemsPerBatch - body["params"].size() - body["tags"].size();
    for (size_t n = 0; m != metrics.end() && n < room; ++m, ++n) {
      // JSON has no NaN or infinity; MLflow reads these spellings (as its Python client sends).
      json value = m->value;
      if (std::isnan(m->value)) value = "NaN";
      else if (std::isinf(m->value)) value = m->value > 0 ? "Infinity" : "-Infinity";
      body["metrics"].push_back(
          {{"key", m->key}, {"value", value}, {"timestamp", m->timestamp_ms}, {"step", m->step}});
    }
    post_json("runs/log-batch", to_text(body));
  }
}

void MlflowClient::update_run(const std::string& run_id, const std::string& status,
                              int64_t end_time_ms) {
  json body = {{"run_id", run_id}, {"status", status}};
  if (end_time_ms > 0) body["end_time"] = end_time_ms;
  post_json("runs/update", to_text(body));
}

void MlflowClient::upload_artifact(const std::string& artifact_uri,
                                   const std::string& relative_path,
                                   const std::string& local_path) {
  check_not_cancelled(relative_path);
  const std::string path = http_->prefix + artifact_proxy_path(artifact_uri, relative_path);
  auto file = std::make_shared<std::ifstream>(local_path, std::ios::binary);
  if (!*file) throw MlflowError(local_path + ": cannot read (artifact " + relative_path + ")", false);
  file->seekg(0, std::ios::end);
  const size_t size = size_t(file->tellg());
  file->seekg(0);
  const auto provider = [this, file](size_t offset, size_t length, httplib::DataSink& sink) {
    if (cancelled_) return false;
    char buffer[1 << 16];
    file->seekg(std::streamoff(offset));
    const size_t n = std::min(length, sizeof buffer);
    file->read(buffer, std::streamsize(n));
    if (size_t(file->gcount()) != n) return false;  // the file shrank underneath: abort
    return sink.write(buffer, n);
  };
  http_->checked(http_->client.Put(path, size, provider, "application/octet-stream"),
                 "PUT " + uri_ + kArtifactApi + " (" + relative_path + ")");
}

void MlflowClient::create_registered_model_if_missing(const std::string& name) {
  try {
    post_json("registered-models/create", to_text(json{{"name", name}}));
  } catch (const MlflowError& e) {
    if (e.error_code() != "RESOURCE_ALREADY_EXISTS") throw;
  }
}

ModelVersion MlflowClient::create_model_version(const std::string& name, const std::string& source,
                                                const std::string& run_id,
                                                const std::string& description, const Tags& tags) {
  const json body = {{"name", name}, {"source", source}, {"run_id", run_id},
                     {"description", description}, {"tags", tags_to(tags)}};
  const json answer =
      parse_answer(post_json("model-versions/create", to_text(body)), "model-versions/create");
  return version_from(field(answer, "model_version", "model-versions/create"));
}

std::vector<ModelVersion> MlflowClient::find_model_versions(const std::string& name,
                                                            const std::string& run_id) {
  // By run id only (hex), matching the name here: a name with a quote in it would need escapes
  // MLflow's filter parser does not undo.
  const json answer =
      parse_answer(get_json("model-versions/search",
                            "filter=" + url_encode("run_id=" + filter_string(run_id), false) +
                                "&max_results=1000"),
                   "model-versions/search");
  std::vector<ModelVersion> versions;
  for (const json& v : answer.value("model_versions", json::array()))
    if (v.is_object() && v.value("name", "") == name) versions.push_back(version_from(v));
  return versions;
}

}  // namespace deblur::track
