"""The frontier benchmark's clock, FLOP count, summary and table, on made-up measurements (no training)."""

import sys
from pathlib import Path

import pytest

from digits.config import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import frontier  # noqa: E402  (a script beside its neighbours, as when it runs)


def test_forward_flops_of_the_articles_network_and_a_strided_cnn():
    assert frontier.forward_flops(TrainConfig.from_preset("seed")) == 2 * (784 * 128 + 128 * 32 + 32 * 10)
    sprint = TrainConfig.from_preset("sprint")  # 28 -> 14 -> 7 -> 4 pixels
    convs = 14 * 14 * 16 * 25 * 1 + 7 * 7 * 32 * 25 * 16 + 4 * 4 * 64 * 9 * 32
    assert frontier.forward_flops(sprint) == 2 * (convs + 4 * 4 * 64 * 128 + 128 * 10)


def test_recipes_of_digits_own_are_trained_by_digits_only():
    assert frontier.recipe_config("sprint:5", quick=False).epochs == 5
    assert frontier.comparable(frontier.recipe_config("sprint", quick=True))
    for recipe in ("cnn:10", "record"):
        assert not frontier.comparable(frontier.recipe_config(recipe, quick=False))
    for recipe in ("reader", "nope"):
        with pytest.raises(SystemExit):
            frontier.recipe_config(recipe, quick=False)


def test_the_clock_leaves_the_test_evaluation_out():
    now = [0.0]

    def evaluate():
        now[0] += 5.0  # the evaluation takes 5 s
        return 0.99

    clock = frontier.Clock(lambda: now[0])
    now[0] = 10.0  # 10 s of training
    clock.epoch(evaluate)
    now[0] += 3.0  # 3 s more
    clock.epoch(evaluate)
    assert clock.epochs == [{"seconds": 10.0, "test_accuracy": 0.99}, {"seconds": 13.0, "test_accuracy": 0.99}]
    assert clock.seconds() == 13.0


def _result(times_and_accuracies, samples=54000):
    epochs = [{"seconds": s, "test_accuracy": a} for s, a in times_and_accuracies]
    return {"train_seconds": epochs[-1]["seconds"], "epochs": epochs, "samples_per_epoch": samples}


def test_summary_times_ratios_and_table():
    article = _result([(100.0, 0.975)], samples=48000) | {"epochs_run": 25}
    rounds = [
        {
            "rep": rep,
            "recipe": "sprint",
            "article": article,
            "keras": _result([(10.0, 0.985), (20.0, 0.991)]),
            "torch": {"error": "ModuleNotFoundError: No module named 'torch'"},
            "digits": _result([(5.0 + rep, 0.990), (10.0 + rep, 0.996)]),
        }
        for rep in (1, 2, 3)
    ]
    rounds.append({"rep": 1, "recipe": "cnn", "article": article, "digits": _result([(30.0, 0.996)])})
    summary = frontier.summarize(rounds, {"article": 1000, "sprint": 4000, "cnn": 9000}, peak=100.0)
    assert [(row["contender"], row["recipe"]) for row in summary] == [
        ("article", "article"),
        ("keras", "sprint"),
        ("torch", "sprint"),
        ("digits", "sprint"),
        ("digits", "cnn"),
    ]
    assert summary[-1]["to_995"] == 30.0 and summary[-1]["to_995_ratio"] == pytest.approx(0.3)
    rows = {row["contender"]: row for row in summary if row["recipe"] != "cnn"}
    assert rows["article"]["to_990"] is None and rows["article"]["final_accuracy"] == 0.975
    assert rows["keras"]["to_990"] == 20.0 and rows["keras"]["to_995"] is None
    assert rows["digits"]["to_990"] == 7.0 and rows["digits"]["to_990_ratio"] == pytest.approx(0.07)
    assert rows["digits"]["to_995"] == 12.0 and rows["digits"]["final_accuracy"] == 0.996
    # 3 x 4000 FLOPs x 2 epochs x 54000 images in 12 s (the median rep): 108 MFLOP/s, 0.1 % of a 100 GFLOP/s peak.
    assert rows["digits"]["gflops"] == pytest.approx(3 * 4000 * 2 * 54000 / 12 / 1e9)
    assert rows["torch"]["runs"] == 0 and "torch" in rows["torch"]["error"]
    report = {
        "quick": True,
        "rows": list(rows.values()),
        "timestamp": "now",
        "peak_gflops": 100.0,
        "machine": {"cpu": "Test CPU", "cores": 2},
        "settings": {"reps": 3, "matmul_n": 512, "argv": ["--quick"]},
    }
    text = frontier.markdown(report)
    assert "QUICK RUN" in text and "Test CPU, 2 cores" in text and "torch (sprint) failed" in text
    assert "| digits    | sprint  |        7.00 | 0.07×" in text and "99.60 %" in text


def test_the_torch_network_is_the_keras_network():
    """Same layers, same sizes: PyTorch's parameters and batch-norm statistics number what Keras counts."""
    torch = pytest.importorskip("torch")
    import frontier_torch
    from digits.train import models

    config = TrainConfig.from_preset("sprint")
    network = frontier_torch.network(config)
    counted = sum(p.numel() for p in network.parameters()) + sum(
        b.numel() for name, b in network.named_buffers() if not name.endswith("num_batches_tracked")
    )
    assert counted == models.build(config).count_params()
    assert network(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_the_readme_summary_row():
    import update_readme

    rows = [
        {"contender": "article", "recipe": "article", "train_seconds": 48.2, "final_accuracy": 0.9736},
        {"contender": "keras", "recipe": "sprint", "to_990": 3.1, "to_995": None},
        {"contender": "digits", "recipe": "sprint", "to_990": 14.26, "to_995": None},
        {"contender": "digits", "recipe": "sprint:8", "to_990": None, "to_995": None},
        {"contender": "digits", "recipe": "sprint-99.5", "to_990": 20.5, "to_995": 52.04},
    ]
    what, figure, link = update_readme.frontier_row({"rows": rows}, "docs/benchmarks.md")
    assert figure == (
        "14.3 s to 99.0 % (`sprint`), 52.0 s to 99.5 % (`sprint-99.5`); the article's `fit`: 48 s (97.36 %)"
    )
    assert link == "docs/benchmarks.md#training-at-the-frontier" and "99.0 %" in what and "99.5 %" in what
    _, never, _ = update_readme.frontier_row({"rows": rows[:1]}, "docs/benchmarks.md")
    assert never.startswith("99.0 % not reached, 99.5 % not reached;")
