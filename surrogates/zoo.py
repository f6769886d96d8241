"""Trained surrogates on disk: export with a JSON card, load with checks, list what is shipped.

    python -m surrogates.zoo list
    python -m surrogates.zoo export runs/flow --name my-flow     # → EXPORT_DIR/my-flow.{ckpt,json}
    python -c "import surrogates; s = surrogates.load_surrogate('my-flow')"

Names are looked up along the zoo path, first match wins: the folders of $SURROGATE_ZOO_PATH
(os.pathsep-separated, ':' on Linux and macOS) or, when it is unset, the user zoo folder
(~/.local/share/surrogate-zoo on Linux, honouring $XDG_DATA_HOME; ~/Library/Application
Support/surrogate-zoo on macOS; %LOCALAPPDATA%\\surrogate-zoo on Windows); then the zoo shipped
with the package. `export` writes to --folder, by default the first folder of $SURROGATE_ZOO_PATH,
else the repository's checkpoints/ when running from a source checkout, else the user zoo folder:
never into the installed package.

A card holds family, backend, theory (name, parameters, prior box, x range), training data,
metrics, package version and the checkpoint's SHA-256. `load_surrogate` refuses a missing or
corrupt file, a checkpoint of another theory or prior than requested, or an incompatible version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from surrogates._version import __version__
from surrogates.errors import InputError
from surrogates.models import Surrogate, get_family
from surrogates.resources import ZOO_PATH_ENV, checkpoint_dir, export_dir, zoo_path
from surrogates.runs import atomic_path, cli_errors, write_json
from surrogates.theory import Theory, get_theory, installed_theory
from surrogates.validation import ArgumentParser

__all__ = [
    "CHECKPOINTS",
    "load_surrogate",
    "save_model",
    "export_checkpoint",
    "list_checkpoints",
    "card_of",
    "resolve_checkpoint",
]

CHECKPOINTS = checkpoint_dir()
_KEY = "surrogate_zoo"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _compatible(version: str) -> bool:
    """Same major.minor as this package (0.x: the minor must match too)."""
    return version.split(".")[:2] == __version__.split(".")[:2]


def _zoo_cards(folders: Sequence[Path]) -> dict[str, Path]:
    """Name → card of every checkpoint with a card in ``folders``; the first folder wins a name."""
    cards: dict[str, Path] = {}
    for folder in folders:
        for card in sorted(Path(folder).glob("*.json")):
            if card.with_suffix(".ckpt").is_file():
                cards.setdefault(card.stem, card)
    return dict(sorted(cards.items()))


def list_checkpoints(folder: str | Path | None = None, theory: str | None = None) -> list[str]:
    """Names of the checkpoints with cards in ``folder``, by default along the zoo path (see the
    module docstring); only those of ``theory`` if given."""
    cards = _zoo_cards(zoo_path() if folder is None else [Path(folder)])
    return [
        name
        for name, card in cards.items()
        if theory is None or json.loads(card.read_text()).get("theory", {}).get("theory") == theory
    ]


def card_of(path: str | Path) -> dict:
    """The JSON card beside a checkpoint, or the zoo metadata stored inside it."""
    path = Path(path)
    card = path.with_suffix(".json")
    if card.is_file():
        try:
            return json.loads(card.read_text())
        except json.JSONDecodeError as err:
            raise InputError(
                f"card '{card}' is not valid JSON ({err.msg}); re-export the checkpoint"
            ) from None
    try:
        meta = torch.load(path, map_location="cpu", weights_only=True).get(_KEY)
    except Exception:  # noqa: BLE001 - any unreadable checkpoint gets one message
        raise InputError(
            f"'{path}' is not a readable checkpoint (corrupt or not a torch file)"
        ) from None
    if not meta:
        raise InputError(f"'{path}' is not a surrogate-zoo checkpoint (no '{_KEY}' metadata)")
    return meta


def resolve_checkpoint(path_or_name: str | Path) -> Path:
    """A zoo name (the first match along the zoo path) or a .ckpt path → the checkpoint file, or
    an InputError listing the names on the zoo path."""
    path: Path | None = Path(path_or_name)
    if path.suffix != ".ckpt":
        card = _zoo_cards(zoo_path()).get(str(path_or_name))
        path = card.with_suffix(".ckpt") if card else None
    if path is None or not path.is_file():
        known = ", ".join(list_checkpoints()) or "none found"
        raise InputError(
            f"checkpoint '{path_or_name}' not found; give a .ckpt path or a zoo name ({known}), "
            f"or add its folder to ${ZOO_PATH_ENV}"
        )
    return path


def load_surrogate(path_or_name: str | Path, theory: str | Theory | None = None) -> Surrogate:
    """A trained surrogate, ready as an EventSource (eval mode, on the CPU).

    Args:
        path_or_name: a ``.ckpt`` file, or the name of a checkpoint on the zoo path (your
            ``$SURROGATE_ZOO_PATH`` folders or user zoo folder, then the shipped zoo).
        theory: when given, the surrogate must be of this theory with the same prior box.

    Raises:
        InputError: missing or corrupt file, checksum mismatch, another theory or prior box,
            or a checkpoint written by an incompatible package version.
    """
    path = resolve_checkpoint(path_or_name)
    card = card_of(path)
    if "sha256" in card and card["sha256"] != _sha256(path):
        raise InputError(
            f"checkpoint '{path}' does not match its card's checksum: the file is corrupt or was replaced"
        )
    version = card.get("version", "?")
    if not _compatible(version):
        raise InputError(
            f"checkpoint '{path}' was written by surrogate-zoo {version}, this is {__version__}; "
            "retrain it with `python -m surrogates.fit`"
        )
    if theory is not None:
        th = get_theory(theory)
        info = card.get("theory", {})
        if info.get("theory") != th.name:
            raise InputError(
                f"checkpoint '{path}' is a surrogate of theory '{info.get('theory')}', not '{th.name}'"
            )
        for key in ("prior_low", "prior_high"):
            want = th.describe()[key]
            if [round(v, 9) for v in info.get(key, [])] != [round(v, 9) for v in want]:
                raise InputError(
                    f"checkpoint '{path}' was trained on the prior box {info.get('prior_low')}..{info.get('prior_high')}, "
                    f"theory '{th.name}' needs {th.describe()['prior_low']}..{th.describe()['prior_high']}"
                )
    _check_stored_theories(path, card)
    cls = get_family(card.get("family", "?"))
    try:
        model = cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise InputError(
            f"cannot load '{path}' as a {cls.family} surrogate ({type(err).__name__}); is it corrupt?"
        ) from None
    return model.eval()


def _check_stored_theories(path: Path, card: dict) -> None:
    """Every theory name the card and the checkpoint's hyperparameters store is a built-in,
    installed or registered theory (`installed_theory`): building the model from a name that
    spells a module would import it."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable checkpoint gets one message
        raise InputError(
            f"'{path}' is not a readable checkpoint (corrupt or not a torch file)"
        ) from None
    hparams = raw.get("hyper_parameters") if isinstance(raw, dict) else None
    names = {str((card.get("theory") or {}).get("theory", ""))}
    if isinstance(hparams, dict) and "theory" in hparams:
        names.add(str(hparams["theory"]))
    for name in sorted(n for n in names if n):
        installed_theory(name)


def save_model(model: Surrogate, path: str | Path) -> Path:
    """Write a minimal checkpoint (weights, hyperparameters, zoo metadata) that `load_surrogate` reads."""
    import pytorch_lightning as pl

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(
            {
                "state_dict": model.state_dict(),
                "hyper_parameters": model.stored_hparams(),
                "pytorch-lightning_version": pl.__version__,
                _KEY: model.zoo_metadata(),
            },
            tmp,
        )
    return path


def export_checkpoint(
    source: str | Path, name: str, folder: str | Path | None = None, metrics: dict | None = None
) -> Path:
    """Copy a trained model (a run directory or a .ckpt) into ``folder`` as ``name.ckpt`` + card.

    ``folder`` defaults to `surrogates.resources.export_dir` (see the module docstring).

    Only the weights and hyperparameters are kept (no optimizer state), so checkpoints stay small.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(name)):
        raise InputError(
            f"--name '{name}' must be a plain name (letters, digits, '.', '_', '-'), not a path"
        )
    source = Path(source)
    run = source if source.is_dir() else source.parent.parent
    ckpt = source
    if source.is_dir():  # the checkpoint the run's metrics describe (best unless it says otherwise)
        recorded = (
            json.loads((run / "metrics.json").read_text()).get("checkpoint")
            if (run / "metrics.json").is_file()
            else None
        )
        ckpt = source / "checkpoints" / (Path(recorded).name if recorded else "best.ckpt")
    if not ckpt.is_file():
        raise InputError(f"no checkpoint at '{ckpt}'; train one with `python -m surrogates.fit`")
    meta = card_of(ckpt) if ckpt.with_suffix(".json").is_file() else None
    try:
        raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a pickle that needs more than tensors and primitives
        raise InputError(
            f"'{ckpt}' is not a readable checkpoint (corrupt, or it holds objects beyond weights "
            "and primitives, which are never unpickled)"
        ) from None
    meta = raw.get(_KEY) or meta
    if not meta:
        raise InputError(f"'{ckpt}' is not a surrogate-zoo checkpoint")
    _check_stored_theories(ckpt, meta)
    slim = {
        k: raw[k]
        for k in ("state_dict", "hyper_parameters", "pytorch-lightning_version", _KEY)
        if k in raw
    }
    folder = export_dir() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name}.ckpt"
    with atomic_path(out) as tmp:
        torch.save(slim, tmp)
    if metrics is None and (run / "metrics.json").is_file():
        metrics = json.loads((run / "metrics.json").read_text())
    training_data = None
    if (run / "config.yaml").is_file():
        import yaml

        config = yaml.safe_load((run / "config.yaml").read_text()) or {}
        training_data = config.get("data") if isinstance(config, dict) else None
        path = (training_data or {}).get("path")
        if path and Path(path).is_file():  # a file's own size and settings, not the unused defaults
            with np.load(path, allow_pickle=False) as f:
                file_meta = json.loads(str(f["meta"]))
                n_params, events = len(f["theta"]), f["events"].shape[2]
            training_data = {
                **training_data,
                "n_params": n_params,
                "events_per_param": events,
                "grid_size": file_meta.get("grid_shape", [None])[0]
                or training_data.get("grid_size"),
                "seed": file_meta.get("seed", training_data.get("seed")),
            }
            if file_meta.get("theta_design"):  # θ not uniform in the box: how they were drawn
                training_data["theta_design"] = file_meta["theta_design"]
    card = {
        **meta,
        "name": name,
        "training_data": training_data,
        "metrics": metrics or {},
        "exported": time.strftime("%Y-%m-%d %H:%M:%S"),
        "sha256": _sha256(out),
        "size_bytes": out.stat().st_size,
    }
    write_json(out.with_suffix(".json"), card)
    return out


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m surrogates.zoo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the checkpoints on the zoo path and their headline metrics")
    exp = sub.add_parser("export", help="copy a trained run into the zoo with a card")
    exp.add_argument("run", help="run directory of surrogates.fit, or a .ckpt")
    exp.add_argument("--name", required=True)
    exp.add_argument(
        "--folder",
        default=None,
        help=f"where to write (default here: {export_dir()}; the first folder of "
        f"${ZOO_PATH_ENV}, else checkpoints/ in a source checkout, else the user zoo folder)",
    )
    exp.add_argument(
        "--theory",
        default=None,
        help="the run's theory when it is not built in or installed: the card (.toml/.yaml) or "
        "module:attribute it was trained with (docs/guide/bring-your-own.md)",
    )
    args = parser.parse_args(argv)
    if args.cmd == "export":
        if args.theory is not None:
            get_theory(args.theory)  # a card or module:attribute: known by name from here on
        out = export_checkpoint(args.run, args.name, args.folder)
        print(
            f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {out.with_suffix('.json').name}"
        )
        return 0
    for name, path in _zoo_cards(zoo_path()).items():
        card = json.loads(path.read_text())
        m = card.get("metrics", {})
        shift = m.get("theta_shift_crb")
        unit = "σ_CRB(A)" if card.get("theory", {}).get("theory") == "proxy" else "σ_CRB(closure)"
        if not shift and m.get("theta_shift_surrogate_crb"):  # a generator's: no exact density
            shift, unit = m["theta_shift_surrogate_crb"], "σ_CRB(surrogate, density-free)"
        shift_text = f"max |θ shift| {max(shift):.2f} {unit}" if shift else "no fidelity yet"
        print(
            f"{name:<20} {card.get('family', '?'):<5} {card.get('backend') or '':<10} {shift_text}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
