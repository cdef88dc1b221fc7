"""End to end on a phantom cohort: import, ROI, cross-validation, bundle (plumbing, not quality)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from musclestate.models.bundle import load_bundle
from musclestate.training.config import TrainConfig
from musclestate.training.cv import run_cv, train_bundle

pytestmark = pytest.mark.slow  # trains networks or runs whole workflows


@pytest.fixture(scope="module")
def roi_dataset(phantom_cohort: Path, tmp_path_factory) -> Path:
    from musclestate.dataset import import_manifest
    from musclestate.roi import apply_roi

    ds = import_manifest(phantom_cohort, tmp_path_factory.mktemp("e2e") / "ds")
    apply_roi(ds)
    return ds


def test_phantom_cohort_through_cv_and_bundle(roi_dataset: Path, tmp_path: Path) -> None:
    from musclestate.dataset import open_dataset

    cfg = TrainConfig().replace(epochs=2, batch_size=16, image_size=(32, 32), num_threads=1,
                      network_params={"widths": [8, 16]})  # fmt: skip
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics_path = run_cv(roi_dataset, tmp_path / "run", cfg, folds=3)
        bundle = train_bundle(roi_dataset, tmp_path / "model", cfg, run=tmp_path / "run")
    finally:
        torch.set_num_threads(old)
    ds = open_dataset(roi_dataset)
    m = json.loads(metrics_path.read_text())
    assert set(m["targets"]) == set(ds.target_units) & set(m["targets"])
    # the default estimator is fused; the image-only network of the same folds stands beside it
    assert set(m["models"]) == {"cnn", "cnn_image_only", "mean_predictor", "feature_baseline"}
    assert sorted(m["models"]["cnn"]["per_participant"]) == sorted(ds.participants)
    for pid in ds.participants:
        assert (tmp_path / "run" / "predictions" / f"{pid}.csv").is_file()
    b = load_bundle(bundle)
    roi_attrs = ds.derived("roi").attrs
    assert b.card.roi["feature_names"] == list(roi_attrs["feature_names"])
    rid = ds.recordings[0].id
    patches = ds.derived("roi").get(rid, "patches")
    assert b.card.input.features == tuple(roi_attrs["feature_names"])
    out = b.predict(patches, features=ds.derived("roi").get(rid, "features"))
    assert set(out) == set(m["targets"])
    for mean, sd in out.values():
        assert mean.shape == (patches.shape[0],) and np.all(np.isfinite(mean)) and np.all(sd > 0)
