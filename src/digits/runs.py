"""Run folders: create them, read and write their config, list them with their status."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from digits import atomic
from digits.errors import EXIT_CODES, Interrupted, TrainingError  # noqa: F401  (importable from here, as before)


def create_run_dir(runs_dir: Path, name: str | None, config: dict) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = name or f"{config['preset']}-{config['dataset']}-s{config['seed']}-{stamp}"
    run_dir = runs_dir / name
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir()
    except FileExistsError:
        raise TrainingError(f"{run_dir} already exists; choose another --name or --resume it.") from None
    except OSError as err:
        raise TrainingError(f"cannot create {run_dir}: {err.strerror}.") from None
    _point_latest(runs_dir, run_dir)
    return run_dir


def _point_latest(runs_dir: Path, run_dir: Path) -> None:
    """`runs/latest` -> the newest run, swapped atomically so it never dangles half-made."""
    tmp = runs_dir / f".latest.{os.getpid()}"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, runs_dir / "latest")


def write_config(run_dir: Path, config: dict, **status) -> None:
    config.update(status)
    atomic.write_json(run_dir / "config.json", config)


def read_config(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "config.json").read_text())
    except FileNotFoundError:
        raise TrainingError(f"{run_dir} is not a run folder (no config.json).") from None
    except (OSError, ValueError) as err:
        raise TrainingError(f"{run_dir}/config.json is unreadable ({err}).") from None




def status(config: dict) -> str:
    """finished, interrupted, failed, running, or killed (its process vanished mid-run)."""
    state = config.get("status", "unknown")
    if state == "running" and not _alive(config.get("pid")):
        return "killed"
    return state


def _alive(pid) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_runs(runs_dir: Path) -> list[dict]:
    """One row per run folder, oldest first: name, preset, dataset, status, test accuracy."""
    rows = []
    if not runs_dir.is_dir():
        return rows
    for run_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.is_symlink()):
        try:
            config = read_config(run_dir)
        except TrainingError:
            continue
        metrics = {}
        if (run_dir / "metrics.json").is_file():
            try:
                metrics = json.loads((run_dir / "metrics.json").read_text())
            except ValueError:
                pass
        rows.append({
            "name": run_dir.name,
            "preset": config.get("preset"),
            "dataset": config.get("dataset"),
            "seed": config.get("seed"),
            "status": status(config),
            "epochs": f"{config.get('epochs_done', 0)}/{config.get('epochs')}",
            "test_accuracy": metrics.get("test_accuracy"),
            "train_seconds": metrics.get("train_seconds"),
            "path": run_dir,
        })
    return rows
