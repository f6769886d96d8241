"""The Ray engine (surrogates.parallel): one local Ray cluster for the module, on which a study and
a training set come out as on local processes, and DeepHyper's Ray evaluator (surrogates.hpo,
another process joining by address) runs its evaluations."""

from __future__ import annotations

import csv
import json
import operator
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inverse.study import run_study
from surrogates.data import load_training, simulate_training
from surrogates.datasets import build_training_set
from surrogates.errors import InputError
from surrogates.parallel import Engine
from surrogates.theory import get_theory

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of two single-CPU workers, started by the engine (and shut down by it)."""
    if ray.is_initialized():  # another module's cluster: this one must be the engine's own
        ray.shutdown()
    engine = Engine("ray", 2)
    assert engine._ray_joined and ray.cluster_resources()["CPU"] == 2
    yield engine
    engine.close()
    assert not ray.is_initialized()  # a cluster the engine started goes with it


def test_tasks_run_on_the_cluster_and_come_back_paired(cluster):
    found = dict(cluster.imap(operator.add, 100, range(7)))  # importable on every worker
    assert found == {i: 100 + i for i in range(7)}
    assert cluster.n_workers == 2 and cluster.describe() == "ray (local cluster), 2 workers"
    assert cluster.ray_address and ":" in cluster.ray_address


def test_a_task_error_comes_back_as_itself_in_one_line(cluster):
    from surrogates.validation import check_int

    with pytest.raises(InputError, match="--n must be") as err:  # check_int("--n", 0) on a worker
        list(cluster.imap(check_int, "--n", [3, 0]))
    assert "\n" not in str(err.value)
    assert dict(cluster.imap(operator.add, 1, [2])) == {2: 3}  # the cluster goes on


def test_a_study_on_ray_gives_the_local_records(tmp_path, cluster, study, records):
    run_study(study(tmp_path / "local", ("mle",)), 3, progress=False)
    summary = run_study(
        study(tmp_path / "ray", ("mle",)), 3, engine="ray", workers=2, progress=False
    )
    assert records(tmp_path / "ray") == records(tmp_path / "local")
    assert summary["run"]["engine"].startswith("ray") and summary["run"]["computed"] == 3
    assert ray.is_initialized()  # the study joined the module's cluster and left it running


@pytest.mark.filterwarnings("ignore::UserWarning")  # a coarse grid, on both engines alike
def test_a_training_set_on_ray_is_the_local_one(tmp_path, cluster):
    proxy = get_theory("proxy")
    kw = dict(chunk=2, grid_size=16, progress=False)
    local = build_training_set(proxy, 5, 4, 7, tmp_path / "local.npz", **kw)
    on_ray = build_training_set(proxy, 5, 4, 7, tmp_path / "ray.npz", engine="ray", workers=2, **kw)
    a, b = load_training(local), load_training(on_ray)
    for name in ("theta", "events", "norms", "grid", "densities"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.meta == b.meta


@pytest.mark.slow  # ~40 s alone, ~70 s beside another test file; make test-slow runs it
def test_deephyper_ray_evaluator_runs_on_the_engine_cluster(tmp_path, cluster):
    """`python -m surrogates.hpo --evaluator ray --address A` in another process joins the
    cluster the engine started: its evaluations ran as Ray tasks on that cluster's node."""
    pytest.importorskip("deephyper")
    simulate_training(get_theory("proxy"), 64, 4, seed=1, grid_size=32).save(tmp_path / "t.npz")
    out = tmp_path / "search"
    cmd = [sys.executable, "-m", "surrogates.hpo", "flow", "--evaluator", "ray"]
    cmd += ["--address", cluster.ray_address, "--max-evals", "2", "--out", str(out)]
    cmd += ["--data", str(tmp_path / "t.npz"), "--epochs", "1", "--held-out", "1"]
    cmd += ["--shift-events", "2000", "--backends", "zuko", "--model.norm_steps", "50"]
    cmd += ["--eval.events", "500"]
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    node = ray.get_runtime_context().get_node_id()  # the engine's cluster has this one node
    assert [n["NodeID"] for n in ray.nodes() if n["Alive"]] == [node]
    assert len(rows) == 2 and all(float(r["objective"]) <= 0 for r in rows), rows
    assert {r["m:ray_node"] for r in rows} == {node}
    summary = json.loads((out / "search.json").read_text())
    assert summary["evaluator"] == "ray" and summary["workers"] == 2  # one per cluster CPU
    assert ray.cluster_resources()["CPU"] == 2  # still the engine's cluster, still running


def test_address_off_a_cluster_engine_and_unknown_engines_are_one_line():
    with pytest.raises(InputError, match="--engine ray or --engine dask") as err:
        Engine("local", 2, address="auto")
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="local, ray, dask"):
        Engine("spark", 2)


def test_a_dead_or_malformed_address_is_one_line_at_once(tmp_path, study):
    for address, words in [("127.0.0.1:1", "cannot reach"), ("nohost", "HOST:PORT")]:
        with pytest.raises(InputError, match=words) as err:
            Engine("ray", 1, address=address)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="cannot reach"):
        run_study(study(tmp_path / "s", ("mle",)), 2, engine="ray", address="127.0.0.1:1")


def test_ray_missing_is_one_line(tmp_path, monkeypatch, study):
    monkeypatch.setitem(sys.modules, "ray", None)  # import fails as if absent
    with pytest.raises(InputError, match=r"pip install 'surrogate-zoo\[ray\]'") as err:
        run_study(study(tmp_path / "s", ("mle",)), 2, engine="ray", progress=False)
    assert "\n" not in str(err.value)
