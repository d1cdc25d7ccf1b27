"""What `pip install digits` puts on disk: site-packages of a fresh venv, per extra, now and at an older commit.

    python benchmarks/install_size.py                       # this tree: core, [serve], [train]
    python benchmarks/install_size.py --ref 39bfb36         # also the flat layout, where TensorFlow was core

The figure is what the install adds to a new virtual environment's site-packages (the pip that
every venv starts with is not counted). Each install goes into a new virtual environment under a temporary folder (pip resolves from the
configured indexes, as a user's would). Writes benchmarks/results/install_size.json; update_readme.py
renders it. Which heavy packages ended up installed is recorded too, so "no TensorFlow" is checked, not said.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HEAVY = ("tensorflow", "tensorflow_cpu", "keras", "matplotlib", "tf2onnx", "fastapi", "optuna")


def _folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def measure(source: Path, extra: str, work: Path) -> dict:
    venv = work / f"venv-{extra or 'core'}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    target = f"{source}[{extra}]" if extra else str(source)
    [site] = venv.glob("lib/python*/site-packages")
    empty = _folder_mb(site)  # pip (and setuptools) that every venv starts with: not ours to count
    subprocess.run([str(pip), "install", "--quiet", "--no-cache-dir", target], check=True, capture_output=True)
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    size = _folder_mb(site) - empty
    packages: dict[str, float] = {}  # a package with its vendored libraries (scipy + scipy.libs)
    for entry in site.iterdir():
        if entry.is_dir() and not entry.name.endswith((".dist-info", "__pycache__")):
            name = entry.name.removesuffix(".libs").lower()
            packages[name] = packages.get(name, 0.0) + _folder_mb(entry)
    largest = sorted(packages.items(), key=lambda item: -item[1])[:3]
    return {
        "extra": extra or "core",
        "site_packages_mb": round(size, 1),
        "heavy_installed": sorted(name for name in HEAVY if name in installed),
        "largest": [[name, round(mb, 1)] for name, mb in largest],
    }


def markdown(rows: list[dict]) -> str:
    """The table update_readme.py copies into the README and docs/benchmarks.md."""
    lines = [
        "| install | site-packages | TensorFlow, Keras, matplotlib installed | largest packages |",
        "| --- | ---: | --- | --- |",
    ]
    for row in rows:
        what = "`pip install digits`" if row["extra"] == "core" else f"`pip install 'digits[{row['extra']}]'`"
        when = f" at {row['tree']} (flat layout)" if row["tree"] != "this" else ""
        heavy = [
            name for name in row["heavy_installed"] if name in ("tensorflow", "tensorflow_cpu", "keras", "matplotlib")
        ]
        largest = ", ".join(f"{name} {mb:.0f} MB" for name, mb in row.get("largest", []))
        lines.append(f"| {what}{when} | {row['site_packages_mb']:.0f} MB | {', '.join(heavy) or 'none'} | {largest} |")
    lines += [
        "",
        "What each install adds to a new virtual environment's site-packages "
        "(`python benchmarks/install_size.py --ref 39bfb36`).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="also measure the core install at this git commit")
    parser.add_argument("--extras", default=",serve,train", help="comma-separated extras ('' = core)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.ref:
            old = work / "old"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.ref],
                check=True,
                capture_output=True,
            )
            try:
                rows.append({"tree": args.ref, **measure(old, "", work / "before")})
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=True)
        for extra in args.extras.split(","):
            rows.append({"tree": "this", **measure(ROOT, extra, work / "now")})
            print(rows[-1], flush=True)
    (HERE / "results" / "install_size.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    (HERE / "results" / "install_size.md").write_text(markdown(rows))
    for row in rows:
        print(f"{row['tree']:>8} {row['extra']:>6}: {row['site_packages_mb']:8.1f} MB  heavy: {row['heavy_installed']}")


if __name__ == "__main__":
    main()
