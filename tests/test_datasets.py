"""Training sets built in chunks, in parallel and resumably (surrogates.datasets): the same set
whatever the chunk size, worker count or engine; an external program gives the set its Python
twin gives; a kill -9 loses only the chunks in flight; mixing settings is refused."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from surrogates.data import load_training, simulate_training
from surrogates.datasets import build_training_set, parts_dir
from surrogates.errors import InputError
from surrogates.generators import CallableGenerator, ExternalGenerator, seed_for
from surrogates.theory import get_theory

ROOT = Path(__file__).resolve().parent.parent

# A user's generator, as a file of its own: importable (a CallableGenerator of `draw`) and
# runnable as a program (`python toygen.py THETA N SEED OUT` writes the same events as .npz).
# Its main imports only NumPy: the external run shares no code path with the package.
TOYGEN = '''
"""A toy event generator with two channels on [0, 1]."""
import os
import sys
import time

import numpy as np

DECLARATION = dict(
    param_names=["t0", "t1"], channels=["a", "b"], prior_low=[0.0, 0.0],
    prior_high=[1.0, 2.0], x_low=[0.0], x_high=[1.0],
)


def draw(theta, n, seed):
    rng = np.random.default_rng(seed)
    a = 0.5 + 0.2 * np.tanh(theta[0] + 0.3 * rng.standard_normal(n))
    b = rng.uniform(0.0, 1.0, n) ** (1.0 + theta[1])
    return [a[:, None], b[:, None]], np.array([1.0 + theta[0], 2.0 + theta[1]])


def slow(theta, n, seed):
    """draw, after a pause, logging each finished call's seed (TOYGEN_SLEEP, TOYGEN_LOG)."""
    time.sleep(float(os.environ.get("TOYGEN_SLEEP", "0")))
    out = draw(theta, n, seed)
    if os.environ.get("TOYGEN_LOG"):
        with open(os.environ["TOYGEN_LOG"], "a") as f:
            f.write(f"{seed}\\n")
    return out


def toy():
    from surrogates.generators import CallableGenerator

    return CallableGenerator(draw, "toy", **DECLARATION)


def slow_toy():
    from surrogates.generators import CallableGenerator

    return CallableGenerator(slow, "toy", **DECLARATION)


if __name__ == "__main__":
    theta, n, seed, out = sys.argv[1:5]
    events, rates = draw(np.array([float(v) for v in theta.split(",")]), int(n), int(seed))
    np.savez(out, events_a=events[0], events_b=events[1], rates=rates)
'''


@pytest.fixture
def toygen(tmp_path, monkeypatch):
    """The toy generator's module, importable here and in worker processes."""
    (tmp_path / "toygen.py").write_text(TOYGEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT)]))
    sys.modules.pop("toygen", None)
    yield importlib.import_module("toygen")
    sys.modules.pop("toygen", None)


def assert_same_set(a, b) -> None:
    for name in ("theta", "events", "norms", "grid", "densities"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.meta == b.meta


def test_chunks_and_workers_do_not_change_a_generator_set(tmp_path, toygen):
    gen = toygen.toy()
    serial = simulate_training(gen, 13, 5, seed=4)
    # "process" is the older name of the local engine, "local" as in studies: both build the set
    runs = [(13, 1, "local"), (3, 1, "local"), (3, 2, "local"), (5, 2, "process")]
    for i, (chunk, workers, engine) in enumerate(runs):
        out = build_training_set(
            gen, 13, 5, 4, tmp_path / f"s{i}.npz", chunk=chunk, workers=workers, engine=engine,
            progress=False,
        )
        assert_same_set(load_training(out, gen), serial)
        assert not parts_dir(out).exists()
    other = build_training_set(gen, 13, 5, 5, tmp_path / "seed5.npz", chunk=3, progress=False)
    assert not np.array_equal(load_training(other).events, serial.events)


def test_a_density_theory_is_seeded_per_chunk(tmp_path, proxy):
    kw = {"chunk": 4, "grid_size": 16, "progress": False}
    one = load_training(build_training_set(proxy, 10, 3, 2, tmp_path / "1.npz", **kw))
    two = load_training(build_training_set(proxy, 10, 3, 2, tmp_path / "2.npz", workers=2, **kw))
    assert_same_set(one, two)
    assert one.meta["seeding"] == "per-chunk" and one.meta["chunk"] == 4
    serial = simulate_training(proxy, 10, 3, 2, grid_size=16)
    # same θ and densities as the serial stream; the events are drawn per chunk
    np.testing.assert_array_equal(one.theta, serial.theta)
    np.testing.assert_array_equal(one.densities, serial.densities)
    assert one.events.shape == serial.events.shape
    assert not np.array_equal(one.events, serial.events)
    # each θ's adaptive grid, concatenated over the chunks, as the serial set places it; and one
    # summary of every chunk's interpolation errors (a chunk's own would differ)
    assert one.grid.shape == (10, 16, 1)
    np.testing.assert_array_equal(one.grid, serial.grid)
    assert one.meta["grid"] == serial.meta["grid"] and one.meta["grid"]["kind"] == "adaptive"


def test_grid_settings_pass_through_and_are_part_of_the_build(tmp_path, proxy):
    from surrogates.sampling import GridToleranceWarning

    kw = {"chunk": 3, "grid_size": 16, "progress": False}
    out = build_training_set(proxy, 7, 2, 1, tmp_path / "c.npz", grid="chebyshev", **kw)
    cheb = load_training(out)
    assert cheb.grid.shape == (16, 1)  # one shared grid, not one per θ or per chunk
    np.testing.assert_array_equal(
        cheb.grid, simulate_training(proxy, 7, 2, 1, 16, grid="chebyshev").grid
    )
    assert cheb.meta["grid"] == {"kind": "chebyshev", "size": 16, "tol": 1e-3}
    # a tolerance no 16-node grid reaches: one warning for the whole set, not one per chunk
    with pytest.warns(GridToleranceWarning) as caught:
        tight = build_training_set(proxy, 7, 2, 1, tmp_path / "t.npz", grid_tol=1e-12, **kw)
    assert len([w for w in caught if w.category is GridToleranceWarning]) == 1
    summary = load_training(tight).meta["grid"]
    assert summary["above_tol"] == 7 and "7 of 7 θ" in summary["warning"]


def test_a_cut_density_build_refuses_other_grid_settings(tmp_path, proxy, monkeypatch):
    import surrogates.datasets as datasets

    simulate_chunk = datasets.simulate_chunk

    def cut(job, chunk):
        if chunk.index == 1:
            raise RuntimeError("cut short")
        return simulate_chunk(job, chunk)

    out, kw = tmp_path / "r.npz", {"chunk": 3, "grid_size": 16, "progress": False}
    monkeypatch.setattr(datasets, "simulate_chunk", cut)
    with pytest.raises(RuntimeError, match="cut short"):
        build_training_set(proxy, 7, 2, 1, out, **kw)
    monkeypatch.undo()
    manifest = json.loads((parts_dir(out) / "manifest.json").read_text())
    assert (manifest["grid"], manifest["grid_size"], manifest["grid_tol"]) == ("adaptive", 16, 1e-3)
    for key, value, differs in [
        ("grid", "chebyshev", 'grid "adaptive" ≠ "chebyshev"'),
        ("grid_tol", 0.01, "grid_tol 0.001 ≠ 0.01"),
        ("grid_size", 32, "grid_size 16 ≠ 32"),
    ]:
        with pytest.raises(InputError, match="--overwrite") as err:
            build_training_set(proxy, 7, 2, 1, out, **{**kw, key: value})
        assert differs in str(err.value) and "\n" not in str(err.value)
    assert not out.exists()
    build_training_set(proxy, 7, 2, 1, out, **kw)  # the same settings resume it
    whole = load_training(out)
    assert whole.grid.shape == (7, 16, 1) and whole.meta["grid"]["kind"] == "adaptive"
    fresh = load_training(build_training_set(proxy, 7, 2, 1, tmp_path / "f.npz", **kw))
    assert_same_set(whole, fresh)


def test_grid_options_a_theory_cannot_use_are_refused_before_writing(tmp_path, proxy):
    out = tmp_path / "x.npz"
    for kwargs, message in [
        ({"grid": "uniform"}, "--grid"),
        ({"grid_tol": 0.0}, "--grid-tol"),
        ({"grid_size": 1}, "--grid-size"),
    ]:
        with pytest.raises(InputError, match=message) as err:
            build_training_set(proxy, 4, 2, 1, out, **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="1-D events"):
        build_training_set(get_theory("dis"), 4, 2, 1, out, grid="adaptive")
    assert not out.exists() and not parts_dir(out).exists()


def test_an_external_program_gives_the_same_training_set(tmp_path, toygen):
    command = [sys.executable, str(tmp_path / "toygen.py"), "{theta}", "{n}", "{seed}", "{out}"]
    external = ExternalGenerator(command, "toy", **toygen.DECLARATION)
    inside = load_training(
        build_training_set(toygen.toy(), 6, 4, 9, tmp_path / "in.npz", progress=False)
    )
    outside = load_training(
        build_training_set(external, 6, 4, 9, tmp_path / "out.npz", chunk=4, progress=False)
    )
    assert_same_set(inside, outside)
    assert outside.meta["has_density"] is False and outside.events.shape == (6, 2, 4, 1)


class Failing:
    """A generator function that fails after ``after`` calls (a build cut short)."""

    def __init__(self, fn, after: int) -> None:
        self.fn, self.after, self.calls = fn, after, 0

    def __call__(self, theta, n, seed):
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("cut short")
        return self.fn(theta, n, seed)


def test_a_cut_build_resumes_and_refuses_other_settings(tmp_path, toygen):
    out = tmp_path / "set.npz"
    cut = CallableGenerator(Failing(toygen.draw, 6), "toy", **toygen.DECLARATION)
    with pytest.raises(InputError, match="generator 'toy' fails at .*RuntimeError: cut short"):
        build_training_set(cut, 11, 3, 1, out, chunk=2, progress=False)
    parts = parts_dir(out)
    assert sorted(p.name for p in parts.glob("chunk-*.npz")) == [
        "chunk-000000.npz",
        "chunk-000001.npz",
        "chunk-000002.npz",
    ]
    assert json.loads((parts / "manifest.json").read_text())["chunk"] == 2
    for kwargs, differs in [({"chunk": 3}, "chunk 2 ≠ 3"), ({"seed": 2}, "seed 1 ≠ 2")]:
        args = {"chunk": 2, "seed": 1, **kwargs}
        with pytest.raises(InputError, match="--overwrite") as err:
            build_training_set(toygen.toy(), 11, 3, args["seed"], out, chunk=args["chunk"])
        assert differs in str(err.value) and "\n" not in str(err.value)
    counted = Failing(toygen.draw, 10**6)
    resumed = CallableGenerator(counted, "toy", **toygen.DECLARATION)
    build_training_set(resumed, 11, 3, 1, out, chunk=2, progress=False)
    assert counted.calls == 11 - 6  # the three finished chunks were not redone
    assert_same_set(load_training(out), simulate_training(toygen.toy(), 11, 3, 1))
    assert not parts.exists()
    with pytest.raises(InputError, match="exists; pass --overwrite"):
        build_training_set(toygen.toy(), 11, 3, 1, out)
    build_training_set(toygen.toy(), 11, 3, 3, out, overwrite=True, progress=False)
    assert load_training(out).meta["seed"] == 3


def test_a_lambda_is_refused_in_one_line_before_writing(tmp_path, toygen):
    gen = CallableGenerator(
        lambda theta, n, seed: toygen.draw(theta, n, seed), "toy", **toygen.DECLARATION
    )
    out = tmp_path / "set.npz"
    with pytest.raises(InputError, match="module level") as err:
        build_training_set(gen, 4, 2, 1, out, workers=2)
    assert "\n" not in str(err.value)
    assert not out.exists() and not parts_dir(out).exists()


@pytest.mark.slow  # a local Dask cluster takes tens of seconds to start on a busy machine
def test_dask_engine_gives_the_same_set(tmp_path, toygen):
    pytest.importorskip("dask.distributed")
    gen = toygen.toy()
    out = build_training_set(
        gen, 9, 4, 6, tmp_path / "d.npz", chunk=2, workers=2, engine="dask", progress=False
    )
    assert_same_set(load_training(out), simulate_training(gen, 9, 4, 6))


def test_dask_missing_is_one_line(tmp_path, toygen, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import fails as if absent
    out = tmp_path / "d.npz"
    with pytest.raises(InputError, match=r"pip install 'surrogate-zoo\[dask\]'"):
        build_training_set(toygen.toy(), 4, 2, 1, out, engine="dask")
    assert not parts_dir(out).exists()


def _live_in_group(pgid: int) -> list[int]:
    """Processes of a process group that are still running (zombies awaiting a reaper excluded)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


def _simulate_cli(out: Path) -> list[str]:
    return [
        sys.executable, "-m", "surrogates.simulate", "training", "--theory", "toygen:slow_toy",
        "--n-params", "24", "--events-per-param", "4", "--seed", "5", "--chunk", "2",
        "--workers", "2", "--no-progress", "--out", str(out),
    ]  # fmt: skip


@pytest.mark.slow
def test_kill_9_mid_build_then_rerun_loses_only_chunks_in_flight(tmp_path, toygen):
    out, log = tmp_path / "set.npz", tmp_path / "calls.log"
    env = {**os.environ, "TOYGEN_LOG": str(log), "TOYGEN_SLEEP": "0.4", "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(
        _simulate_cli(out), env=env, cwd=tmp_path, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    parts = parts_dir(out)
    try:
        while len(list(parts.glob("chunk-*.npz"))) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # the build only: its workers must notice and exit
        proc.wait()
        for _ in range(600):  # the workers and the fork server leave with the build
            if not _live_in_group(proc.pid):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"worker processes {_live_in_group(proc.pid)} outlived the killed build")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    kept = sorted(int(p.stem.split("-")[1]) for p in parts.glob("chunk-*.npz"))
    assert 3 <= len(kept) < 12 and not out.exists()
    row_seeds = {seed_for(5, i): i for i in range(24)}
    before = {row_seeds[int(s)] for s in log.read_text().split()}
    saved = {i for c in kept for i in (2 * c, 2 * c + 1)}
    lost_chunks = {i // 2 for i in before - saved}
    assert len(lost_chunks) <= 2  # at most one chunk per worker was in flight
    log.write_text("")
    env["TOYGEN_SLEEP"] = "0"
    rerun = subprocess.run(
        _simulate_cli(out), env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    redone = sorted(row_seeds[int(s)] for s in log.read_text().split())
    assert redone == sorted(set(range(24)) - saved)  # only the rows of unfinished chunks
    assert_same_set(load_training(out), simulate_training(toygen.toy(), 24, 4, 5))
    assert not parts.exists()


def test_the_documented_minimal_file_loads(tmp_path, toygen):
    theta = np.array([[0.2, 1.0], [0.7, 0.5]])
    events = np.random.default_rng(0).uniform(0, 1, (2, 2, 3, 1)).astype(np.float32)
    meta = {"kind": "training", "theory": "toy", "has_density": False}
    meta.update(param_names=["t0", "t1"], channels=["a", "b"])
    path = tmp_path / "train.npz"
    np.savez_compressed(
        path, theta=theta, events=events, norms=np.ones((2, 2)), meta=json.dumps(meta)
    )
    ts = load_training(path, toygen.toy())
    assert not ts.has_density and ts.events.shape == (2, 2, 3, 1)


def test_a_second_build_of_the_same_file_at_once_is_refused(tmp_path, toygen):
    from filelock import FileLock

    out = tmp_path / "set.npz"
    parts_dir(out).mkdir()
    with FileLock(parts_dir(out) / ".lock"):
        with pytest.raises(InputError, match="another build of") as err:
            build_training_set(toygen.toy(), 4, 2, 1, out, progress=False)
    assert "\n" not in str(err.value) and not out.exists()
    build_training_set(toygen.toy(), 4, 2, 1, out, progress=False)  # released: it runs
    assert load_training(out).theta.shape == (4, 2) and not parts_dir(out).exists()


def test_the_cli_builds_proxy_smeared_and_keeps_a_finished_file(tmp_path, capsys):
    from surrogates import simulate
    from tests.conftest import run_cli

    out = tmp_path / "set.npz"
    argv = ["training", "--theory", "proxy-smeared", "--n-params", "5", "--events-per-param", "3"]
    argv += ["--chunk", "2", "--no-progress", "--out", str(out)]
    status, *_ = run_cli(simulate.main, argv, capsys)
    assert status == 0
    first = load_training(out)
    assert first.meta["theory"] == "proxy-smeared" and not first.has_density
    status, _, err = run_cli(simulate.main, [*argv, "--seed", "2"], capsys)
    assert status == 2 and "--overwrite" in err and err.count("\n") == 1, err
    np.testing.assert_array_equal(load_training(out).events, first.events)  # untouched
    status, *_ = run_cli(simulate.main, [*argv, "--seed", "2", "--overwrite"], capsys)
    assert status == 0 and load_training(out).meta["seed"] == 2


def test_the_cli_passes_grid_options_and_prints_the_merged_summary(tmp_path, capsys):
    from surrogates import simulate
    from tests.conftest import run_cli

    out = tmp_path / "set.npz"
    argv = ["training", "--theory", "proxy", "--n-params", "6", "--events-per-param", "2"]
    argv += ["--grid-size", "16", "--chunk", "2", "--no-progress", "--out", str(out)]
    status, stdout, _ = run_cli(simulate.main, argv, capsys)
    ts = load_training(out)
    assert status == 0 and ts.grid.shape == (6, 16, 1)
    summary = ts.meta["grid"]
    line = f"median {summary['error_median']:.2g}, max {summary['error_max']:.2g}"
    assert "grid: adaptive, 16 nodes per θ" in stdout and line in stdout, stdout
    status, stdout, err = run_cli(simulate.main, [*argv, "--grid", "chebyshev"], capsys)
    assert status == 2 and "--overwrite" in err  # a finished file is kept
    status, stdout, _ = run_cli(
        simulate.main, [*argv, "--grid", "chebyshev", "--overwrite"], capsys
    )
    assert status == 0 and load_training(out).grid.shape == (16, 1) and "grid:" not in stdout


def test_a_card_theory_travels_to_worker_processes_as_its_path(tmp_path):
    import pickle

    from surrogates.datasets import Job

    peak = get_theory("peak")  # the shipped card: its density lives in a module loaded from a file
    job = Job(peak, np.zeros((1, peak.n_params)), 1, 1, 16, "auto", "adaptive", 1e-3)
    assert pickle.loads(pickle.dumps(job)).module2.card == str(Path(peak.card).resolve())
    kw = {"chunk": 2, "grid_size": 16, "progress": False}
    with pytest.warns(UserWarning):  # 16 nodes do not reach the default grid_tol on the peak
        one = load_training(build_training_set(peak, 5, 2, 7, tmp_path / "1.npz", **kw))
        two = build_training_set(peak, 5, 2, 7, tmp_path / "2.npz", workers=2, **kw)
    assert_same_set(one, load_training(two, peak))
    assert one.grid.shape == (5, 16, 1)


def test_a_log_uniform_design_samples_small_normalizations_and_is_recorded(tmp_path, capsys):
    """--log-uniform N_u,N_d: in about --log-fraction of the θ both are drawn log-uniformly, so
    N_u < 0.03 (1% of its box) holds for ~0.5/3 + 0.5·0.01 of the θ instead of 1%; the other
    parameters are the uniform draw's, and the file's meta says what the design was."""
    from surrogates import simulate
    from tests.conftest import run_cli

    argv = ["training", "--theory", "proxy-smeared", "--n-params", "400", "--events-per-param"]
    argv += ["2", "--seed", "4", "--no-progress"]
    uniform, logged = tmp_path / "u.npz", tmp_path / "l.npz"
    assert run_cli(simulate.main, [*argv, "--out", str(uniform)], capsys)[0] == 0
    design = ["--log-uniform", "N_u,N_d", "--log-fraction", "0.5"]
    assert run_cli(simulate.main, [*argv, *design, "--out", str(logged)], capsys)[0] == 0
    u, lg = load_training(uniform), load_training(logged)
    assert lg.meta["theta_design"] == {"log_uniform": ["N_u", "N_d"], "fraction": 0.5, "floor": 1e-3}
    assert "theta_design" not in u.meta
    np.testing.assert_array_equal(lg.theta[:, [1, 2, 4, 5]], u.theta[:, [1, 2, 4, 5]])
    small = (lg.theta[:, [0, 3]] < 0.03).mean(0)
    assert np.all(small > 0.09) and np.all(small < 0.26), small  # expected 0.172 each
    assert (u.theta[:, [0, 3]] < 0.03).mean() < 0.04
    assert lg.theta[:, [0, 3]].min() >= 3e-3 and lg.theta[:, [0, 3]].max() <= 3.0


@pytest.mark.parametrize(
    "design, problem",
    [
        (["--log-uniform", "N_x"], "not a parameter of proxy-smeared"),
        (["--log-uniform", "a_u"], "is not positive"),
        (["--log-uniform", "N_u", "--log-fraction", "0"], "--log-fraction must be in (0, 1]"),
        (["--log-uniform", "N_u", "--log-floor", "1"], "--log-floor must be in (0, 1)"),
        (["--log-uniform", "N_u,N_u"], "names a parameter twice"),
    ],
)
def test_a_bad_log_uniform_design_is_refused_in_one_line(tmp_path, capsys, design, problem):
    from surrogates import simulate
    from tests.conftest import run_cli

    out = tmp_path / "set.npz"
    argv = ["training", "--theory", "proxy-smeared", "--n-params", "4", "--events-per-param"]
    status, _, err = run_cli(simulate.main, [*argv, "2", *design, "--out", str(out)], capsys)
    assert status == 2 and problem in err and err.count("\n") == 1, err
    assert not out.exists() and not parts_dir(out).exists()
