"""Build a :class:`~musclestate.inference.predictor.Predictor` from an estimator bundle.

The bundle's card says how its training patches were cut (the ROI settings) and what the network
expects; :func:`load_predictor` puts together the segmenter, the ROI stage with those settings and
the estimator on the chosen backend (PyTorch or ONNX Runtime).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.errors import BundleError, ConfigError
from musclestate.inference.novelty import FeatureNovelty
from musclestate.inference.predictor import Predictor, PredictorConfig, TrainingRange
from musclestate.models.card import BundleCard

log = logging.getLogger(__name__)

#: How far (in training SDs) an estimate may lie from the training mean before it is flagged
#: ``out_of_range`` when the card does not record the training minimum and maximum.
RANGE_SDS = 3.0


class TorchEstimator:
    """The bundle itself as the estimator (PyTorch on CPU)."""

    def __init__(self, bundle: Any) -> None:
        self.bundle = bundle
        self.targets = tuple(bundle.target_names)
        self.units = dict(bundle.units)
        self.context = int(bundle.context)

    @property
    def feature_inputs(self) -> tuple[str, ...]:
        return tuple(self.bundle.feature_inputs)

    def predict(
        self, patches: np.ndarray, features: np.ndarray | None = None
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return self.bundle.predict(patches, features=features)


def training_range(card: BundleCard) -> tuple[TrainingRange, str]:
    """Ranges for the ``out_of_range`` flag, and a sentence saying how they were set.

    Targets: the card's ``training.target_range`` (min, max over the training frames) where
    present, else mean +- :data:`RANGE_SDS` training SDs. Architecture measures: jointly, by
    their Mahalanobis distance from the training frames (:class:`FeatureNovelty`) where the card
    records ``training.feature_novelty``; else, for cards written before it, each by
    ``training.feature_range`` (min, max) where present.

    Raises:
        BundleError: a ``feature_novelty`` entry that is malformed.
    """
    tr = card.training
    ranges: dict[str, tuple[float, float]] = {}
    rules = set()
    for t in card.targets:
        lo_hi = tr.target_range.get(t.name)
        if lo_hi is not None and None not in lo_hi:
            ranges[t.name] = (lo_hi[0], lo_hi[1])
            rules.add("targets: training min..max")
        else:
            ranges[t.name] = (t.mean - RANGE_SDS * t.sd, t.mean + RANGE_SDS * t.sd)
            rules.add(f"targets: training mean +- {RANGE_SDS:g} SD")
    if tr.feature_novelty:
        try:
            novelty = FeatureNovelty.from_dict(tr.feature_novelty)
        except ConfigError as exc:
            raise BundleError(
                f"card training.feature_novelty: {exc}; retrain the bundle, or remove the entry "
                "to flag the architecture measures by their training min..max instead"
            ) from None
        rules.add(
            f"architecture measures: Mahalanobis distance of {len(novelty.names)} measures from "
            f"the training frames > {novelty.threshold:.3g} (the {100 * novelty.quantile:g} % "
            f"quantile over {novelty.calibration})"
        )
        return TrainingRange(targets=ranges, novelty=novelty), "; ".join(sorted(rules))
    features = {k: (v[0], v[1]) for k, v in tr.feature_range.items() if None not in v}
    if features:
        rules.add("architecture measures: training min..max")
    return TrainingRange(targets=ranges, features=features), "; ".join(sorted(rules)) or "none"


def _segmenter(path: str | Path | None, roi_model: str | None) -> Any:
    from musclestate.roi.segment import load_segmenter

    if path is not None and not isinstance(path, str | Path):
        return path  # a segmenter object (anything with Segmenter.predict)
    chosen = path if path is not None else roi_model
    try:
        return load_segmenter(chosen)
    except BundleError as exc:
        raise BundleError(
            f"{exc}; the bundle's ROI step used segmenter {roi_model or 'shipped'!r}: pass "
            "segmenter=PATH (CLI: --segmenter) to point at it"
        ) from exc


def _scaled_size(seg: Any, scale: float) -> int | None:
    if scale >= 1.0:
        return None
    factor = int(np.prod(seg.config.strides))
    return max(2 * factor, round(seg.config.input_size * scale / factor) * factor)


def load_predictor(
    model: str | Path,
    *,
    config: PredictorConfig | None = None,
    segmenter: str | Path | Any = None,
    onnx: str | Path | None = None,
    default_spacing_mm: tuple[float, float] | None = None,
    calibration: str | Path | None = None,
) -> Predictor:
    """Load a bundle and everything it needs to estimate from raw frames.

    Args:
        model: estimator bundle folder (``card.json`` + ``model.safetensors``).
        config: run settings (backend, batch size, ROI every k-th frame, segmenter scale).
        segmenter: segmenter weights to use instead of the one named in the bundle's ROI
            settings (``None`` = that one; the shipped model if it says so), or a segmenter
            object with ``predict(frames (N, H, W) uint8) -> (N, H, W) float32``.
        onnx: an exported estimator (``musclestate export``) for the ONNX backend; ``None``
            exports in memory at load time.
        default_spacing_mm: spacing for inputs that carry none.
        calibration: a person's calibration profile (``musclestate calibrate``) for this
            bundle: their estimates are corrected by it.

    Raises:
        BundleError: not a bundle, a bundle of another format version, an ONNX file from a
            different bundle, or a bundle whose input is neither ROI patches nor whole frames.
        InputError: a calibration profile that is unreadable, made for another bundle, or for
            targets this bundle does not estimate.
    """
    from musclestate import __version__
    from musclestate.inference.batch import training_input
    from musclestate.inference.outputs import sha256_file
    from musclestate.inference.roi_stage import BundleRoi, WholeFrameRoi, roi_config_from_card
    from musclestate.models.bundle import load_bundle

    cfg = config or PredictorConfig()
    bundle = load_bundle(model)
    card = bundle.card
    if card.package_version != __version__:
        log.warning(
            "%s was written by musclestate %s; this is %s (the bundle format matches, but "
            "check results against the version that trained it)",
            model,
            card.package_version,
            __version__,
        )
    kind = card.input.kind
    if kind not in ("patches", "frame"):
        raise BundleError(
            f"this bundle takes {kind!r} input; prediction from raw frames supports bundles "
            'trained on ROI patches or whole frames (`input = "patches"` or `"frame"`)',
            model,
        )
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    roi_cfg = None if kind == "frame" and not card.roi else roi_config_from_card(card)
    seg = None if roi_cfg is None else _segmenter(segmenter, roi_cfg.model)
    size = None if seg is None else _scaled_size(seg, cfg.roi_scale)
    if cfg.backend == "onnx":
        import torch

        from musclestate.inference.export import OnnxEstimator, OnnxSegmenter

        # PyTorch only resizes images here; its thread pool costs more than it saves on such
        # small ops (and spins on a CPU shared with other work)
        torch.set_num_threads(1)

        estimator: Any = OnnxEstimator(bundle, onnx, threads=cfg.threads)
        estimator.context = int(bundle.context)
        if hasattr(seg, "network"):  # a musclestate Segmenter: run its U-Net under ORT too
            seg = OnnxSegmenter(seg, input_size=size, threads=cfg.threads)
    else:
        if onnx is not None:
            raise BundleError("an ONNX file is used only with backend 'onnx'", onnx)
        estimator = TorchEstimator(bundle)
        if size is not None and hasattr(seg, "network"):
            from musclestate.roi.segment import Segmenter

            seg = Segmenter(seg.network, dataclasses.replace(seg.config, input_size=size), seg.card)
    roi: Any = None
    if roi_cfg is not None:
        roi = BundleRoi(
            seg,
            roi_cfg,
            every=cfg.roi_every,
            default_spacing_mm=default_spacing_mm,
            live_async=cfg.live_async,
            with_patches=kind != "frame",  # a frame estimator reads the frame, not patches
        )
    if kind == "frame":
        roi = WholeFrameRoi(roi)
    rng, rule = training_range(card)
    info = {
        "path": str(Path(model).resolve()),
        "sha256": sha256_file(Path(model)),
        "package_version": card.package_version,
        "targets": card.units,
        "network": card.network.name,
        "training_participants": list(card.training.participants),
        "training_dataset": card.training.dataset,
        "training_input": training_input(card),
        "input": kind,
        "roi": None if roi.config is None else roi.config.to_dict(),
        "segmenter": None
        if seg is None
        else {
            "path": str(segmenter)
            if isinstance(segmenter, str | Path)
            else (roi_cfg.model or "shipped"),
            "input_size": seg.config.input_size,
        },
        "backend": cfg.backend,
        "onnx": None if onnx is None else str(onnx),
        "out_of_range_rule": rule,
    }
    profile = None
    if calibration is not None:
        profile = _calibration_profile(calibration, info["sha256"], bundle.target_names)
        info["calibration"] = {"path": str(Path(calibration).resolve())} | profile.to_dict()
    if bundle.context:
        log.info("bundle uses %d frame(s) of temporal context each side", bundle.context)
    return Predictor(roi, estimator, cfg, training_range=rng, info=info, calibration=profile)


def _calibration_profile(path: str | Path, sha256: str, targets: tuple[str, ...]) -> Any:
    from musclestate.calibration import load_profile
    from musclestate.errors import InputError

    profile = load_profile(path)
    profile.check_bundle(sha256, path)
    unknown = sorted(set(profile.corrections) - set(targets))
    if unknown:
        raise InputError(
            f"the profile corrects {unknown}, which this estimator does not estimate "
            f"({list(targets)}); calibrate again with this estimator",
            path,
        )
    return profile
