"""The speed benchmark's summary and table, on made-up measurements (no training)."""

from helpers import benchmark_module

speed = benchmark_module("speed")


def _report():
    reference = {
        "fit_seconds": 100.0,
        "epoch_seconds": 4.0,
        "article_process_seconds": 110.0,
        "predict_10k_seconds": 1.0,
        "predict_10k_first_seconds": 1.5,
        "import_seconds": 3.0,
        "test_accuracy": 0.975,
        "single_predict_seconds": [0.05] * 10,
        "parameters": 104938,
        "train_samples": 48000,
    }
    run = {
        "train_seconds": 2.0,
        "process_seconds": 20.0,
        "test_accuracy": 0.978,
        "epoch_seconds": 0.25,
        "epochs_run": 8,
        "parameters": 104938,
        "samples_per_epoch": 53760,
        "phases": {"data": 1.0, "import TensorFlow": 2.0, "training": 2.5, "compile": 0.5, "ONNX export": 1.0},
    }
    training = [{"rep": 1, "reference": reference, "fast": run, "seed": run}]
    inference = {"predict_10k_seconds": [0.05] * 3, "single_predict_seconds": [1e-4] * 100}
    cold = [
        {"reference": {"process_seconds": 6.0}, "digits": {"process_seconds": 3.0}},
        {"reference": {"process_seconds": 6.0}, "digits": {"process_seconds": None, "error": "boom"}},
    ]
    matmul = {"n": 2048, "gflops": 100.0}
    report = {
        "quick": True,
        "timestamp": "now",
        "settings": {"reps": 1, "reference_epochs": 25},
        "machine": {"cpu": "Test CPU", "cores": 2, "python": "3.11", "versions": {"keras": "3"}},
        "raw": {
            "training": training,
            "cold_start": cold,
            "matmul": matmul,
            "keras_fit": [{"steps_per_execution": 64, "jit_compile": True, "fit_seconds": 4.0, "val_accuracy": 0.97}],
        },
    }
    report["summary"] = speed.summarize(training, inference, cold, matmul)
    return report


def test_targets_and_table():
    report = _report()
    rows = {row["key"]: row for row in report["summary"]["figures"]}
    assert rows["fit"]["met"] and rows["fit"]["stretch_met"]  # 1/50
    assert not rows["command"]["met"]  # 1/5.5
    assert rows["epoch"]["met"] and rows["batch_predict"]["met"]  # 1/16, 1/20
    assert not rows["cold_start"]["met"]  # 1/2 (the failed round is skipped)
    text = speed.markdown(report)
    assert "QUICK RUN" in text and "Test CPU, 2 cores" in text and "`digits predict` failed: boom" in text
    assert "| 1/50 | ≤ 1/25 (stretch 1/40) | ✅ (stretch ✅) |" in text
    # 20 s of process: 2 + 2.5 + 1 in phases leave 14.5 s outside them.
    assert report["summary"]["breakdown"]["interpreter start, CLI and the rest"] == 14.5
    assert "| ONNX export | 1.00 s |" in text and "| data, read and verified (beside the import) | 1.00 s |" in text
    assert "| `model.fit`, steps_per_execution=64, jit_compile=True | 4.00 s | 0.9700 | 1/2 |" in text
