"""Run files are written whole or not at all (atomic rename), checkpoints included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from surrogates.data import read_events, write_events
from surrogates.runs import SafeCheckpointIO, write_json


def _interrupted(self: object, checkpoint: dict, path: Path, *args: object) -> None:
    Path(path).write_bytes(b"half a checkpoint")
    raise KeyboardInterrupt("killed mid-write")


def test_an_interrupted_checkpoint_save_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    io = SafeCheckpointIO()
    last = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, last)
    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", _interrupted)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, last)
    assert torch.load(last, weights_only=True)["epoch"] == 1
    assert [p.name for p in last.parent.iterdir()] == ["last.ckpt"], "a partial file was left"


def test_a_failed_json_or_event_write_leaves_nothing(tmp_path, proxy, monkeypatch):
    write_json(tmp_path / "metrics.json", {"a": np.float64(1.5)})
    with pytest.raises(TypeError):
        write_json(tmp_path / "metrics.json", {"a": object()})
    assert (tmp_path / "metrics.json").read_text().strip().endswith("}")
    from surrogates.data import simulate_observed

    data = simulate_observed(proxy, proxy.truth.numpy(), [50, 30], seed=2)
    path = write_events(tmp_path / "obs.npz", data, proxy.channels)
    assert read_events(path, proxy).counts.tolist() == data.counts.tolist()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError):
        write_events(tmp_path / "other.npz", data, proxy.channels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "obs.npz"]


def test_a_run_folder_has_one_writer_and_a_finished_run_is_kept(tmp_path):
    import subprocess
    import sys

    from surrogates.errors import InputError
    from surrogates.runs import claim_run_dir

    out = tmp_path / "run"
    holder = (
        "import sys, time; from surrogates.runs import claim_run_dir\n"
        f"with claim_run_dir({str(out)!r}):\n"
        "    print('held', flush=True); time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match="in use by pid") as err:
            with claim_run_dir(out):
                pass
        assert "\n" not in str(err.value)
    finally:
        proc.kill()
        proc.wait()
    with claim_run_dir(out) as run:  # a killed holder leaves the folder free
        write_json(run / "metrics.json", {"done": 1})
        (run / "plot.png").write_bytes(b"png")
    with pytest.raises(InputError, match="finished run"):
        with claim_run_dir(out):
            pass
    with claim_run_dir(out, resume=True):
        assert (out / "metrics.json").is_file()
    with claim_run_dir(out, overwrite=True):
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".run.lock")) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        with claim_run_dir(tmp_path / "file"):
            pass


def test_a_checkpoint_is_loaded_without_running_code(tmp_path):
    from surrogates.errors import InputError

    class Payload:
        def __reduce__(self) -> tuple:
            return (Path.touch, (tmp_path / "ran",))

    io = SafeCheckpointIO()
    torch.save({"state_dict": {}, "evil": Payload()}, tmp_path / "evil.ckpt")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    for name in ("evil.ckpt", "text.ckpt", "missing.ckpt"):
        with pytest.raises(InputError) as err:
            io.load_checkpoint(tmp_path / name)
        assert "\n" not in str(err.value)
    assert not (tmp_path / "ran").exists()
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, tmp_path / "ok.ckpt")
    assert io.load_checkpoint(tmp_path / "ok.ckpt")["epoch"] == 3
