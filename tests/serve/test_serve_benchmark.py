"""The serving benchmark's table, on made-up measurements (no servers, no load)."""

from helpers import benchmark_module

bench = benchmark_module("serve")


def side(rps, p99):
    return {"rps": rps, "p50_ms": p99 / 4, "p99_ms": p99, "errors": 0}


def test_table_names_every_figure_and_the_targets():
    report = {
        "load": {
            "png28": {
                "median": {"digits": side(1200.0, 30.0), "tutorial": side(40.0, 900.0), "ratio": 30.0},
                "wrk": {"digits": side(1500.0, 20.0), "tutorial": side(30.0, 800.0), "ratio": 50.0},
            },
            "photo": {
                "median": {"digits": side(30.0, 450.0), "tutorial": side(10.0, 1500.0), "ratio": 3.0},
                "runs": {"digits": [{"worker_shares": [0.45, 0.55]}, {"worker_shares": [0.2, 0.8]}]},
            },
        },
        "crowds": {
            256: {
                **side(1100.0, 90.0),
                "health_p99_ms": 40.0,
                "health_max_ms": 80.0,
                "health_failures": 0,
                "wrk": side(1300.0, 70.0),
            }
        },
        "rss": {"before_mib": 400.0, "after_mib": 404.0, "requests": 50000, "growth": 0.01},
        "attacks": [
            {
                "attack": "slow headers",
                "health_p50_ms": 2.0,
                "health_p99_ms": 9.0,
                "health_max_ms": 12.0,
                "health_failures": 0,
                "peak_rss_mib": 500,
                "alive_after": True,
                "log_bytes": 0,
            }
        ],
        "targets_met": {"≥ 1,000 req/s": True, "photo p99 ≤ 500 ms": False},
        "machine": {"cpu": "Test CPU", "cores": 2},
        "load_average_before": "0.1 0.2 0.3",
        "model": "m.onnx",
        "reps": 3,
        "workers": 2,
        "photo_source": "synthetic photo",
        "command": "python benchmarks/serve.py --model m",
    }
    text = bench.markdown(report)
    assert "| 28×28 PNG, 32 | digits | 1,200 | 7.5 | 30.0 | 0 |" in text
    assert "| 28×28 PNG, 32 | ratio | **30.0×** | | | |" in text
    assert "| 28×28 PNG, 32 (wrk) | digits | 1,500 | | 20.0 | 0 |" in text and "| **50.0×** |" in text
    assert "| 28×28 PNG, 256 | digits | 1,100 | 22.5 | 90.0 | 0 |" in text
    assert "| 28×28 PNG, 256 (wrk) | digits | 1,300 | | 70.0 | 0 |" in text
    assert "share of the 2 MP answers, per run: 45 % / 55 %; 20 % / 80 %." in text
    assert "256 clients: p99 40.0 ms, max 80.0 ms, 0 failed" in text
    assert "400 MiB before and 404 MiB after 50,000 more" in text and "(+1.0 %)" in text
    assert "| slow headers | 2.0 | 9.0 | 12.0 | 0 | 500 | yes | 0 |" in text
    assert "≥ 1,000 req/s met, photo p99 ≤ 500 ms **not met**" in text
    assert "Test CPU, 2 cores, load average 0.1 0.2 0.3" in text
