"""DDP with two CPU processes (gloo) learns as one process does, through `musclestate train`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from musclestate.cli import app
from musclestate.models.bundle import load_bundle
from musclestate.training.config import TrainConfig
from musclestate.training.metrics import compute_r2
from test_training_cv import write_synthetic_dataset

pytestmark = pytest.mark.slow  # trains networks or runs whole workflows

CFG = TrainConfig().replace(image_size=(24, 24), epochs=6, batch_size=16, lr=3e-3, num_threads=1,
                  accelerator="cpu", network_params={"widths": [8, 16, 32]},
                  fuse_features=False)  # fmt: skip


def test_ddp_on_two_cpu_processes_learns_like_one(synthetic_recordings, tmp_path: Path) -> None:
    recs = synthetic_recordings(participants=4, recordings=1, frames=96, size=24, seed=2)
    ds = write_synthetic_dataset(tmp_path / "ds", recs)
    config = tmp_path / "train.json"
    config.write_text(json.dumps(CFG.to_dict()))
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = CliRunner().invoke(
            app, ["train", str(ds), "--out", str(tmp_path / "one"), "--config", str(config)]
        )
    finally:
        torch.set_num_threads(old)
    assert res.exit_code == 0, res.output
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    two = str(tmp_path / "two")
    cmd = [sys.executable, "-m", "musclestate.cli", "train", str(ds), "--out", two,
           "--config", str(config), "--devices", "2", "--strategy", "ddp"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=420, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "estimator bundle" in proc.stdout
    one, two = load_bundle(tmp_path / "one"), load_bundle(tmp_path / "two")
    assert one.card.training.epochs_run == two.card.training.epochs_run
    held_out = synthetic_recordings(participants=2, recordings=1, frames=96, size=24, seed=9)
    x = np.concatenate([r["images"] for r in held_out])
    p1, p2 = one.predict(x), two.predict(x)
    gains = []
    for i, name in enumerate(one.target_names):
        y = np.concatenate([r["targets"][name] for r in held_out])
        r2_one, r2_two = compute_r2(y, p1[name][0]), compute_r2(y, p2[name][0])
        r2_mean = compute_r2(y, np.full_like(y, one.card.targets[i].mean))
        gains.append(min(r2_one, r2_two) - r2_mean)
        assert abs(r2_one - r2_two) < 0.05, (name, r2_one, r2_two)
        # same global batches and GroupNorm: the two runs differ only by float summation order
        assert np.corrcoef(p1[name][0], p2[name][0])[0, 1] > 0.98, name
    assert np.mean(gains) > 0.3, gains  # both learned (held-out people, 2 training people)
