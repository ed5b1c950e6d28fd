#!/usr/bin/env python3
"""deblur's MLflow tracking against a real `mlflow server`, read back through MLflow's own client.

Starts `mlflow server` on 127.0.0.1 (a free port, a temporary SQLite store and artifact root),
trains small runs with `deblur train --tracking_uri ...` and checks, through mlflow.MlflowClient,
every param, every metric's whole history, the artifacts (bytes equal to the run folder's), the
run's tags and status, and the registered model's new version with its signature. The fault
tests stop the server in the middle of a run and start it again, point a run at a port where
nothing listens, interrupt a run with Ctrl-C and resume it, fail a run, and use a server without
the artifact proxy; afterwards nothing may be missing on the server (`deblur runs push` finishing
what the trainer could not send) and the trainer must have finished normally.

usage: test_mlflow.py --deblur build/bin/deblur [-k NAME]   (Python with mlflow installed:
scripts/setup_mlflow.sh; ctest runs it as tracking.mlflow when configured with
-DDEBLUR_MLFLOW_PYTHON=...)
"""
import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

# The metrics the trainer logs per epoch, from metrics.csv's columns.
METRIC_COLUMNS = {
    "train_loss": "train_loss", "val_loss": "val_loss", "psnr": "val_psnr", "ssim": "val_ssim",
    "lr": "lr", "grad_norm": "grad_norm", "msssim_fallbacks": "loss_fallbacks",
    "images_per_s": "images_per_s", "epoch_seconds": "seconds", "input_psnr": "input_psnr",
    "input_ssim": "input_ssim",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`mlflow server` on 127.0.0.1 with its own SQLite store; stop() and start() keep the data."""

    def __init__(self, root, proxy_artifacts=True):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # Without the proxy the server hands out a file: artifact root the trainer cannot reach.
        self.artifact_args = (
            ["--artifacts-destination", str(self.root / "artifacts")] if proxy_artifacts else
            ["--no-serve-artifacts", "--default-artifact-root", (self.root / "files").as_uri()])
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self, timeout=120):
        log = open(self.root / "server.log", "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             *self.artifact_args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: see {self.root / 'server.log'}")
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"mlflow server did not answer within {timeout} s")

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # the whole server, workers too, at once
            self.process.wait()
        self.process = None


class Context:
    def __init__(self, deblur, root, server):
        self.deblur = deblur
        self.root = Path(root)
        self.server = server
        mlflow.set_tracking_uri(server.uri)  # mlflow.models.get_model_info reads the global one
        self.client = MlflowClient(tracking_uri=server.uri)
        self.data = self.root / "data"

    def train_args(self, name, epochs, extra=()):
        return [self.deblur, "train", "--train_data", str(self.data / "train"),
                "--test_data", str(self.data / "val"), "--base", "8", "--patch_size", "32",
                "--batch_size", "2", "--num_epochs", str(epochs), "--val_tile", "64",
                "--workers", "1", "--threads", "1",
                "--checkpoint_dir", str(self.root / name / "checkpoints"),
                "--run_dir", str(self.root / name / "run"), *extra]

    def train(self, name, epochs, extra=(), expect_rc=0):
        done = subprocess.run(self.train_args(name, epochs, extra), capture_output=True, text=True,
                              timeout=600, env=clean_env())
        check(done.returncode == expect_rc,
              f"deblur train exited {done.returncode}, expected {expect_rc}:\n{done.stdout}\n"
              f"{done.stderr}")
        return done.stdout + done.stderr

    def deblur_run(self, *args):
        done = subprocess.run([self.deblur, *args], capture_output=True, text=True, timeout=600,
                              env=clean_env())
        check(done.returncode == 0, f"deblur {' '.join(args)} exited {done.returncode}:\n"
              f"{done.stdout}\n{done.stderr}")
        return done.stdout + done.stderr


def clean_env():
    """This environment without MLflow's variables (mlflow.set_tracking_uri sets one)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def run_folder_state(ctx, run_dir):
    """The run folder's ledger (mlflow.json) for the test server."""
    ledger = json.loads((Path(run_dir) / "mlflow.json").read_text())
    return ledger["servers"][ctx.server.uri]


def check_run_on_server(ctx, run_dir, status, model_name=None, expected_epochs=None):
    """Everything the run folder holds is on the server: params, metrics, artifacts, status."""
    run_dir = Path(run_dir)
    run_id = run_folder_state(ctx, run_dir)["run_id"]
    run = ctx.client.get_run(run_id)
    local_run = json.loads((run_dir / "run.json").read_text())
    check(run.info.status == status, f"run status {run.info.status}, expected {status}")
    check(local_run["status"] == status, f"run.json status {local_run['status']}")
    tags = run.data.tags
    for key, value in (("git_commit", local_run["git_commit"]), ("device", local_run["device"]),
                       ("host", local_run["host"])):
        check(tags.get(key) == value, f"tag {key}: {tags.get(key)!r}, expected {value!r}")

    params = json.loads((run_dir / "params.json").read_text())
    for key, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value)
        # A value changed since the param was logged (--resume) is a tag: params are immutable.
        got = tags.get(f"deblur.changed.{key}", run.data.params.get(key))
        check(got == text, f"param {key}: {got!r}, expected {text!r}")

    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    if expected_epochs is not None:
        check(len(rows) == expected_epochs, f"metrics.csv has {len(rows)} epochs, expected "
              f"{expected_epochs}")
    check(rows, "metrics.csv has no epoch")
    for metric, column in METRIC_COLUMNS.items():
        history = ctx.client.get_metric_history(run_id, metric)
        got = {(m.step, m.timestamp): m.value for m in history}
        want = {(int(r["epoch"]), int(r["timestamp_ms"])): float(r[column]) for r in rows}
        check(set(got) == set(want), f"metric {metric}: steps/timestamps {sorted(got)}, "
              f"expected {sorted(want)}")
        for key, value in want.items():
            check(abs(got[key] - value) <= 1e-9 * max(1.0, abs(value)),
                  f"metric {metric} at {key}: {got[key]}, expected {value}")

    downloads = Path(tempfile.mkdtemp(dir=ctx.root))
    for name in ("params.json", "metrics.csv", "metrics.png", "run.json"):
        path = ctx.client.download_artifacts(run_id, name, str(downloads))
        check(Path(path).read_bytes() == (run_dir / name).read_bytes(),
              f"artifact {name} differs from the run folder's")
    best = local_run["best_checkpoint"]
    if status != "RUNNING" and best:
        name = Path(best).name
        path = ctx.client.download_artifacts(run_id, f"checkpoints/{name}", str(downloads))
        check(Path(path).read_bytes() == Path(best).read_bytes(),
              f"artifact checkpoints/{name} differs from {best}")
        model_files = {a.path for a in ctx.client.list_artifacts(run_id, "deblur_model")}
        check(model_files == {"deblur_model/MLmodel", "deblur_model/model.safetensors"},
              f"deblur_model/ holds {sorted(model_files)}")

    if model_name:
        versions = ctx.client.search_model_versions(f"name='{model_name}' and run_id='{run_id}'")
        check(len(versions) == 1, f"{len(versions)} versions of {model_name} from run {run_id}")
        version = versions[0]
        check(version.source == f"runs:/{run_id}/deblur_model", f"source {version.source}")
        check(version.tags.get("checkpoint") == Path(best).name,
              f"version tags {version.tags}, best checkpoint {best}")
        info = mlflow.models.get_model_info(f"models:/{model_name}/{version.version}")
        for schema in (info.signature.inputs, info.signature.outputs):
            (spec,) = schema.to_dict()
            check(spec["type"] == "tensor" and spec["tensor-spec"]["dtype"] == "float32" and
                  list(spec["tensor-spec"]["shape"]) == [-1, 3, -1, -1],
                  f"signature {spec}")
        check("deblur" in info.flavors, f"flavors {info.flavors}")
        return version
    return None


def wait_for_epochs(ctx, run_dir, epochs, timeout=300):
    """Until the server has `epochs` epochs of the run's metrics."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            run_id = run_folder_state(ctx, run_dir)["run_id"]
            if len(ctx.client.get_metric_history(run_id, "psnr")) >= epochs:
                return
        except (OSError, KeyError, ValueError):  # no ledger or run yet
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server did not get {epochs} epochs of {run_dir} in {timeout} s")


# --- the tests ------------------------------------------------------------------------------

def test_tracked_training(ctx):
    """Params, every metric's history, artifacts, tags, status and a model version."""
    out = ctx.train("tracked", 3, ["--tracking_uri", ctx.server.uri, "--experiment_name",
                                   "deblur-it", "--run_name", "it-run",
                                   "--registered_model_name", "deblur_it"])
    check("warning: MLflow" not in out, f"a tracking warning with a live server:\n{out}")
    run_dir = ctx.root / "tracked" / "run"
    first = check_run_on_server(ctx, run_dir, "FINISHED", "deblur_it", expected_epochs=3)
    run = ctx.client.get_run(run_folder_state(ctx, run_dir)["run_id"])
    check(run.info.run_name == "it-run", f"run name {run.info.run_name}")
    experiment = ctx.client.get_experiment(run.info.experiment_id)
    check(experiment.name == "deblur-it", f"experiment {experiment.name}")
    # A second run of the same model name is its next version.
    ctx.train("tracked2", 2, ["--tracking_uri", ctx.server.uri, "--experiment_name",
                              "deblur-it", "--registered_model_name", "deblur_it"])
    second = check_run_on_server(ctx, ctx.root / "tracked2" / "run", "FINISHED", "deblur_it")
    check(int(second.version) == int(first.version) + 1,
          f"versions {first.version} then {second.version}")


def test_server_restart(ctx):
    """The server dies mid-run and comes back: the run ends normally and nothing is missing."""
    env = dict(clean_env(), MLFLOW_TRACKING_URI=ctx.server.uri)  # the variable, not the flag
    args = ctx.train_args("restart", 14, ["--registered_model_name", "deblur_restart",
                                          "--tracking_wait", "300"])
    trainer = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env)
    run_dir = ctx.root / "restart" / "run"
    wait_for_epochs(ctx, run_dir, 1)
    ctx.server.stop()
    time.sleep(3)
    check(trainer.poll() is None, "training ended before the server came back: make it longer")
    ctx.server.start()
    out, _ = trainer.communicate(timeout=600)
    check(trainer.returncode == 0, f"deblur train exited {trainer.returncode}:\n{out}")
    check(out.count("is not answering") == 1, f"warned {out.count('is not answering')} times:\n"
          f"{out}")
    check("answers again" in out or "MLflow: run" in out, f"no catch-up line:\n{out}")
    check_run_on_server(ctx, run_dir, "FINISHED", "deblur_restart", expected_epochs=14)


def test_unreachable_then_push(ctx):
    """No server at all: training finishes, warns once, and runs push sends everything later."""
    dead = f"http://127.0.0.1:{free_port()}"
    out = ctx.train("unreachable", 3, ["--tracking_uri", dead, "--tracking_wait", "2",
                                       "--registered_model_name", "deblur_push"])
    check(out.count("is not answering") == 1, f"warned {out.count('is not answering')} times:\n"
          f"{out}")
    check("deblur runs push" in out, f"no hint to push later:\n{out}")
    run_dir = ctx.root / "unreachable" / "run"
    # The registered name was saved with the run: push needs only the server.
    ctx.deblur_run("runs", "push", str(run_dir), "--tracking_uri", ctx.server.uri)
    check_run_on_server(ctx, run_dir, "FINISHED", "deblur_push", expected_epochs=3)
    # Pushing again sends nothing new and makes no second version.
    ctx.deblur_run("runs", "push", str(run_dir), "--tracking_uri", ctx.server.uri)
    check_run_on_server(ctx, run_dir, "FINISHED", "deblur_push", expected_epochs=3)


def test_untracked_run_pushed(ctx):
    """A run trained without tracking goes to MLflow whole with deblur runs push."""
    out = ctx.train("untracked", 2)
    check("MLflow" not in out, f"tracking without a URI:\n{out}")
    run_dir = ctx.root / "untracked" / "run"
    check(not (run_dir / "mlflow.json").exists(), "mlflow.json without tracking")
    ctx.deblur_run("runs", "push", str(run_dir), "--tracking_uri", ctx.server.uri,
                   "--registered_model_name", "deblur_later")
    check_run_on_server(ctx, run_dir, "FINISHED", "deblur_later", expected_epochs=2)


def test_ctrl_c_is_killed_then_resumed(ctx):
    """Ctrl-C: exit 130 and a KILLED run with no version; --resume carries the same MLflow run
    on to FINISHED, its history whole, and registers it."""
    extra = ["--tracking_uri", ctx.server.uri, "--registered_model_name", "deblur_resumed"]
    args = ctx.train_args("interrupted", 8, extra)
    trainer = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=clean_env())
    run_dir = ctx.root / "interrupted" / "run"
    wait_for_epochs(ctx, run_dir, 2)
    trainer.send_signal(signal.SIGINT)
    out, _ = trainer.communicate(timeout=600)
    check(trainer.returncode == 130, f"deblur train exited {trainer.returncode}:\n{out}")
    check_run_on_server(ctx, run_dir, "KILLED")
    check(not ctx.client.search_model_versions("name='deblur_resumed'"),
          "a KILLED run was registered")
    run_id = run_folder_state(ctx, run_dir)["run_id"]

    last = ctx.root / "interrupted" / "checkpoints" / "last.safetensors"
    ctx.train("interrupted", 8, [*extra, "--resume", str(last)])
    check(run_folder_state(ctx, run_dir)["run_id"] == run_id, "the resumed run is a new MLflow run")
    check(ctx.client.get_run(run_id).data.params["resume"] == "", "the first resume param changed")
    check_run_on_server(ctx, run_dir, "FINISHED", "deblur_resumed", expected_epochs=8)


def test_error_is_failed(ctx):
    """A run that dies of an error (its validation images deleted mid-run) is FAILED on the server."""
    data = ctx.root / "failing-data"
    shutil.copytree(ctx.data, data)
    args = ctx.train_args("failing", 50, ["--tracking_uri", ctx.server.uri])
    args[args.index("--test_data") + 1] = str(data / "val")
    trainer = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=clean_env())
    run_dir = ctx.root / "failing" / "run"
    wait_for_epochs(ctx, run_dir, 1)
    shutil.rmtree(data / "val")
    out, _ = trainer.communicate(timeout=600)
    check(trainer.returncode == 1, f"deblur train exited {trainer.returncode}:\n{out}")
    check_run_on_server(ctx, run_dir, "FAILED")


def test_server_without_artifact_proxy(ctx):
    """A server that does not proxy artifacts still gets params, metrics and status; one warning."""
    plain = Server(ctx.root / "plain-server", proxy_artifacts=False)
    plain.start()
    try:
        out = ctx.train("plain", 2, ["--tracking_uri", plain.uri,
                                     "--registered_model_name", "deblur_plain"])
        check(out.count("no artifacts sent") == 1, f"warned {out.count('no artifacts sent')} "
              f"times:\n{out}")
        ledger = json.loads((ctx.root / "plain" / "run" / "mlflow.json").read_text())
        run_id = ledger["servers"][plain.uri]["run_id"]
        client = MlflowClient(tracking_uri=plain.uri)
        run = client.get_run(run_id)
        check(run.info.status == "FINISHED", f"status {run.info.status}")
        check(len(client.get_metric_history(run_id, "psnr")) == 2, "psnr history")
        check(run.data.params.get("num_epochs") == "2", f"params {run.data.params}")
        check(not client.search_model_versions("name='deblur_plain'"),
              "a version whose model was never uploaded")
    finally:
        plain.stop()


TESTS = [test_tracked_training, test_server_restart, test_unreachable_then_push,
         test_untracked_run_pushed, test_ctrl_c_is_killed_then_resumed, test_error_is_failed,
         test_server_without_artifact_proxy]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deblur", required=True, help="the deblur binary")
    parser.add_argument("-k", default="", help="run only tests whose name contains this")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    deblur = str(Path(args.deblur).resolve())
    root = Path(tempfile.mkdtemp(prefix="deblur-mlflow-"))
    server = Server(root / "server")
    failures = 0
    try:
        subprocess.run([deblur, "make-dataset", "--procedural", "6", "--val", "2", "--copies", "1",
                        "--output", str(root / "data")], check=True, capture_output=True)
        start = time.time()
        server.start()
        print(f"mlflow server at {server.uri} ({time.time() - start:.1f} s to start)", flush=True)
        ctx = Context(deblur, root, server)
        for test in TESTS:
            if args.k not in test.__name__:
                continue
            start = time.time()
            try:
                if server.process is None:
                    server.start()
                test(ctx)
                print(f"PASS {test.__name__} ({time.time() - start:.1f} s)", flush=True)
            except Exception:  # report every test, then fail
                failures += 1
                print(f"FAIL {test.__name__}\n{traceback.format_exc()}", flush=True)
    finally:
        server.stop()
        if failures or args.keep:
            print(f"kept {root}")
        else:
            subprocess.run(["rm", "-rf", str(root)])
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
