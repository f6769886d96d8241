"""Run files are written whole or not at all (atomic rename), checkpoints included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from surrogates.data import read_events, write_events
from surrogates.runs import AtomicCheckpointIO, write_json


def _interrupted(self: object, checkpoint: dict, path: Path, *args: object) -> None:
    Path(path).write_bytes(b"half a checkpoint")
    raise KeyboardInterrupt("killed mid-write")


def test_an_interrupted_checkpoint_save_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
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
