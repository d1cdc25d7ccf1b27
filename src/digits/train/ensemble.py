"""`digits ensemble RUN RUN ... --out DIR`: several finished runs as one ONNX model that averages their probabilities.

Contract:
- The ensemble is one ONNX graph: the members' graphs side by side (each
  prefixed `m0_`, `m1_`, ... by `onnx.compose.add_prefix`), all fed the one
  input `image`, then a `Mean` of their probabilities. It is written as the
  `model.onnx` of a new run folder (`runs.RunDir`, atomic writes), so the
  Reader (`--model DIR`), `digits evaluate DIR` and the server load it like any
  run; its report (metrics.json, plots) is written at once.
- Calibration: a member's temperature (`digits.calibration`) is applied inside
  its branch, before the mean, so the ensemble outputs exactly the mean of what
  each member's `Recognizer.predict_proba` returns. Averaged logits do not exist
  after the softmax, and refitting a temperature would need each member's
  validation split, which members trained on different subsets do not share:
  the ensemble fits none and stores none.
- Its config.json holds the first member's config with preset "ensemble", and
  its `RunInfo.ensemble` the members (folder, preset, seed, test accuracy,
  temperature). It has no checkpoint and no history: it is never trained.
- Refused with one `EnsembleError` sentence, before anything is written: fewer
  than two members, a member that is not a finished run, members that
  disagree on the dataset or the number of classes (10, or 11 with "not a
  digit"), and an `--out` that already exists, is `latest` or is hidden.
- Ctrl-C and SIGTERM remove the folder being built; its config.json is
  written last, so a folder killed outright (or still being built) holds
  none, and `digits runs` shows it broken, never finished.

This module never imports TensorFlow.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from digits import atomic
from digits.calibration import FLOOR
from digits.errors import Interrupted, TrainingError, first_line, stop_signals_call
from digits.read.model import Recognizer, read_model
from digits.runs import LATEST, RunDir, RunInfo

INPUT = "image"
OUTPUT = "probabilities"


class EnsembleError(TrainingError):
    """Runs that cannot be averaged into one model, or an --out that cannot receive it."""


def build(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike, data_dir=None) -> tuple[Path, dict]:
    """Average finished runs into the run folder `out`; return it and its test metrics."""
    from digits.train.evaluate import report_run
    from digits.train.extra_data import load_test_set

    if isinstance(run_dirs, (str, bytes, os.PathLike)):  # a string is iterable too, and would be read letter by letter
        raise TypeError(f"run_dirs is a list of run folders, not the one folder {os.fsdecode(run_dirs)!r}.")
    members = [_member(RunDir(path)) for path in run_dirs]
    if len(members) < 2:
        raise EnsembleError(f"an ensemble needs at least two runs, {len(members)} given; name two or more run folders.")
    _agree(members)
    out_run = RunDir(out)
    if out_run.name == LATEST or out_run.name.startswith(".") or not out_run.name.isprintable():  # as --name
        raise EnsembleError(
            f"--out {out_run.path}: {out_run.name!r} cannot name a run ({LATEST!r} is the link to the newest run, "
            "a name starting with a dot is hidden, and a name prints on one line); choose another folder name."
        )
    _distinct(members, out_run.path)
    if out_run.path.exists() or out_run.path.is_symlink():
        kind = "a run folder" if out_run.has(RunDir.CONFIG) else "something that is not a run folder"
        raise EnsembleError(f"{out_run.path} already exists ({kind}); choose another --out.")
    try:
        model = averaged_model([m["onnx"] for m in members], [m["temperature"] for m in members])
    except Exception as err:  # onnx's checker and its graph tools raise their own types
        raise EnsembleError(f"the members' models cannot be joined into one ({first_line(err)}).") from None
    config = replace(members[0]["config"], preset="ensemble")
    test = load_test_set(config.dataset, data_dir)
    info = RunInfo(
        status="finished",
        epochs_done=0,
        parameters=sum(m["parameters"] or 0 for m in members),
        ensemble=[{k: m[k] for k in ("run", "preset", "seed", "test_accuracy", "temperature")} for m in members],
    )
    # Ctrl-C and SIGTERM alike leave no half-made run (SIGTERM's default would end the process mid-way), from
    # the folder's making to its removal on the way out.
    with stop_signals_call(_interrupt):
        try:
            out_run.path.mkdir(parents=True)
        except OSError as err:
            raise EnsembleError(f"cannot create {out_run.path}: {err.strerror}.") from None
        try:
            atomic.write_bytes(out_run.onnx_path, model.SerializeToString(), follow_symlinks=False)
            metrics = report_run(out_run, config, info, {}, test)
            # Last: a folder killed before it (SIGKILL) holds no config.json, and `digits runs` shows it broken,
            # never finished (as it shows one still being built).
            out_run.write_config(config, info)
        except BaseException:
            # Made by this call: a joined model that does not answer (the report runs it) leaves no half-made run.
            shutil.rmtree(out_run.path, ignore_errors=True)
            raise
    return out_run.path, metrics


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def _member(run: RunDir) -> dict:
    """What the ensemble needs of one member; a run that is not finished is refused."""
    config, info = run.read_run()
    if (status := run.status(info)) != "finished":  # "killed", as `digits runs` says, not the "running" it recorded
        raise EnsembleError(f"{run}: the run has not finished (status {status!r}); finish it before averaging it.")
    recognizer = Recognizer(run.path)  # checks that its model loads and takes 28x28 images
    try:
        accuracy = run.read_metrics()["test_accuracy"]
    except TrainingError:
        accuracy = None
    return {
        "run": str(run.path.resolve()),  # where it is, not how it was named: a link or a relative path moves
        "config": config,
        "preset": config.preset,
        "seed": config.seed,
        "parameters": info.parameters,
        "test_accuracy": accuracy,
        "classes": recognizer.num_classes,
        "temperature": recognizer.temperature,
        "onnx": recognizer.path,
    }


def _distinct(members: list[dict], out: Path) -> None:
    """Each member once (a run named twice is one model counted twice), and the ensemble outside every member."""
    seen: set[str] = set()
    out = out.resolve()
    for member in members:
        if member["run"] in seen:
            raise EnsembleError(f"{member['run']} is named twice; an ensemble averages different runs.")
        seen.add(member["run"])
        if out.is_relative_to(member["run"]):
            raise EnsembleError(f"--out {out} is inside the member {member['run']}; choose a folder outside it.")


def _agree(members: list[dict]) -> None:
    """Members must be read the same way: the same dataset and the same classes."""
    first = members[0]
    for member in members[1:]:
        if member["classes"] != first["classes"]:
            raise EnsembleError(
                f"{member['run']} outputs {member['classes']} classes but {first['run']} outputs {first['classes']}; "
                "average only runs with the same classes (all with the reject class, or none)."
            )
        if member["config"].dataset != first["config"].dataset:
            raise EnsembleError(
                f"{member['run']} was trained on {member['config'].dataset} but {first['run']} on "
                f"{first['config'].dataset}; average only runs of one dataset."
            )


def averaged_model(paths: list[Path], temperatures: list[float]):
    """One ONNX model: every member fed the same `image`, each calibrated by its temperature, then their Mean."""
    import onnx
    from onnx import compose, helper

    loaded = [onnx.load_from_string(read_model(path)) for path in paths]
    nodes, initializers, value_info, outputs = [], [], [], []
    for i, (member, temperature) in enumerate(zip(loaded, temperatures, strict=True)):
        prefix = f"m{i}_"
        member = compose.add_prefix(member, prefix)
        graph = member.graph
        nodes.append(helper.make_node("Identity", [INPUT], [graph.input[0].name], name=f"{prefix}feed"))
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        value_info.extend(graph.value_info)
        out = graph.output[0].name
        if temperature != 1.0:
            out = _calibrated(nodes, initializers, out, temperature, prefix)
        outputs.append(out)
    nodes.append(helper.make_node("Mean", outputs, [OUTPUT], name="mean"))
    first = loaded[0].graph
    image = helper.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT, _shape(first.input[0]))
    probabilities = helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, _shape(first.output[0]))
    graph = helper.make_graph(nodes, "ensemble", [image], [probabilities], initializers, value_info=value_info)
    model = helper.make_model(graph, opset_imports=_opsets(loaded), producer_name="digits ensemble")
    model.ir_version = max(m.ir_version for m in loaded)
    onnx.checker.check_model(model)
    return model


def _calibrated(nodes: list, initializers: list, probabilities: str, temperature: float, prefix: str) -> str:
    """softmax(log(max(p, floor)) / T): `calibration.apply` as graph nodes; returns the output's name."""
    from onnx import helper, numpy_helper

    floor, t = f"{prefix}floor", f"{prefix}temperature"
    initializers.append(numpy_helper.from_array(np.array(FLOOR, np.float32), floor))
    initializers.append(numpy_helper.from_array(np.array(temperature, np.float32), t))
    floored, log_p, scaled, out = (f"{prefix}calibration_{step}" for step in ("max", "log", "div", "softmax"))
    nodes += [
        helper.make_node("Max", [probabilities, floor], [floored], name=floored),
        helper.make_node("Log", [floored], [log_p], name=log_p),
        helper.make_node("Div", [log_p, t], [scaled], name=scaled),
        helper.make_node("Softmax", [scaled], [out], name=out, axis=-1),
    ]
    return out


def _shape(value_info) -> list:
    """A graph input's or output's shape, a symbolic dimension kept as its name."""
    return [
        d.dim_param or (d.dim_value if d.HasField("dim_value") else None) for d in value_info.type.tensor_type.shape.dim
    ]


def _opsets(models: list) -> list:
    """Each operator domain at the highest version any member uses (members come from one exporter)."""
    from onnx import helper

    versions: dict[str, int] = {}
    for model in models:
        for opset in model.opset_import:
            versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    return [helper.make_opsetid(domain, version) for domain, version in versions.items()]
