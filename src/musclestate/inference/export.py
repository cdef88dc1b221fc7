"""ONNX export of a bundle's networks and the ONNX Runtime backend.

:func:`export_onnx` writes the estimator (network + de-normalisation, ``x (N, C, h, w)`` in 0..1
-> ``mean, sd (N, T)`` in the targets' units) as an ONNX file whose metadata carries the bundle's
card and SHA-256, then checks ONNX Runtime against PyTorch on real-looking inputs.
:class:`OnnxEstimator` and :class:`OnnxSegmenter` run the estimator and the aponeurosis network
under ONNX Runtime with the same interfaces as their PyTorch counterparts.

Agreement: float32 ONNX Runtime and PyTorch CPU kernels differ by rounding only; the exported
estimator must agree with PyTorch within ``atol = 1e-3 + 1e-4 * |value|`` in the target's unit
(e.g. 0.001 deg), far below any estimate's SD. :data:`TOLERANCE` states it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musclestate._atomic import atomic_file
from musclestate.errors import BundleError, InputError

log = logging.getLogger(__name__)

#: ``(atol, rtol)`` within which ONNX Runtime must reproduce PyTorch (targets' units).
TOLERANCE = (1e-3, 1e-4)
ONNX_FORMAT = "musclestate-estimator-onnx"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote and how well it agrees with PyTorch."""

    path: Path
    n_checked: int
    max_abs_diff: float
    tolerance: float
    opset: int


def _to_onnx_bytes(
    module: Any, example: Any, names: tuple[str, ...], opset: int, n_inputs: int = 1
) -> bytes:
    """Trace ``module`` to ONNX with a dynamic batch axis (and dynamic H, W for 4-D inputs).

    ``names`` lists the ``n_inputs`` input names, then the output names; ``example`` is one
    tensor or a tuple of ``n_inputs`` tensors.
    """
    import torch

    examples = example if isinstance(example, tuple) else (example,)
    inputs, outputs = names[:n_inputs], names[n_inputs:]
    frames = inputs[0] == "frames"
    dyn = {name: {0: "n"} for name in inputs}
    if examples[0].ndim == 4 and frames:
        dyn = {inputs[0]: {0: "n", 2: "h", 3: "w"}}
    for out in outputs:
        dyn[out] = {0: "n", **({2: "h", 3: "w"} if frames else {})}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript exporter is the one that needs no extra package (onnxscript)
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            examples,
            buf,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=dyn,
            opset_version=opset,
            dynamo=False,
        )
    return buf.getvalue()


def _with_metadata(model_bytes: bytes, meta: dict[str, str]) -> bytes:
    import onnx

    model = onnx.load_from_string(model_bytes)
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    return model.SerializeToString()


def bundle_sha256(bundle_dir: str | Path) -> str:
    """SHA-256 over a bundle's ``card.json`` and ``model.safetensors`` (in that order)."""
    h = hashlib.sha256()
    for name in ("card.json", "model.safetensors"):
        h.update((Path(bundle_dir) / name).read_bytes())
    return h.hexdigest()


def estimator_onnx_bytes(bundle: Any, opset: int = 17) -> bytes:
    """The bundle's estimator as ONNX bytes (input ``x``, and ``features`` for a fused
    network; outputs ``mean``, ``sd``) + metadata."""
    import torch

    from musclestate import __version__

    h, w = bundle.image_size
    example = torch.zeros(2, bundle.in_channels, h, w)
    n_f = len(bundle.feature_inputs)
    if n_f:
        feats = torch.zeros(2, n_f)
        feats[1, 0] = float("nan")  # trace the path that stands in for an unmeasured value
        raw = _to_onnx_bytes(bundle.torch_module(), (example, feats),
                             ("x", "features", "mean", "sd"), opset, n_inputs=2)  # fmt: skip
    else:
        raw = _to_onnx_bytes(bundle.torch_module(), example, ("x", "mean", "sd"), opset)
    return _with_metadata(
        raw,
        {
            "format": ONNX_FORMAT,
            "musclestate_version": __version__,
            "bundle_sha256": bundle_sha256(bundle.path),
            "card": json.dumps(bundle.card.to_dict()),
        },
    )


def _session(model: bytes | str | Path, threads: int | None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # no busy-waiting between ops: on a CPU shared with other work, spinning threads burn the
    # cores that the other stages (and other programs) need
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an exported estimator; refuses ONNX files musclestate did not write."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others from protobuf
        raise BundleError(f"not a readable ONNX file ({exc})", path) from exc
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("format") != ONNX_FORMAT:
        raise BundleError(
            f"ONNX file was not written by `musclestate export` (format {meta.get('format')!r})",
            path,
        )
    return meta


class OnnxEstimator:
    """A bundle's estimator under ONNX Runtime (same ``predict`` as the bundle).

    Args:
        bundle: the loaded bundle (its card and input preparation are used).
        model: exported ONNX bytes or file (``None`` = export now, in memory).
        threads: ONNX Runtime intra-op threads (``None`` = its default).
    """

    def __init__(
        self, bundle: Any, model: bytes | str | Path | None = None, *, threads: int | None = None
    ) -> None:
        if model is None:
            model = estimator_onnx_bytes(bundle)
        elif not isinstance(model, bytes):
            meta = read_onnx_metadata(model)
            want = bundle_sha256(bundle.path)
            if meta.get("bundle_sha256") != want:
                raise BundleError(
                    f"ONNX file was exported from another bundle (sha256 "
                    f"{meta.get('bundle_sha256', '?')[:12]}..., this bundle {want[:12]}...); "
                    "export again with `musclestate export`",
                    model,
                )
        self.bundle = bundle
        self.session = _session(model, threads)
        self.targets = tuple(bundle.target_names)
        self.units = dict(bundle.units)

    @property
    def feature_inputs(self) -> tuple[str, ...]:
        return tuple(self.bundle.feature_inputs)

    def predict(
        self, patches: np.ndarray, batch_size: int = 256, features: np.ndarray | None = None
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``patches (N, C, h, w)`` uint8 or float 0..1 (and ``features (N, F)`` for a fused
        network) -> ``{target: (mean (N,), sd (N,))}``."""
        x = self.bundle.prepare(patches).numpy()
        f = self.bundle.prepare_features(features, x.shape[0])
        means, sds = [], []
        for s in range(0, x.shape[0], batch_size):
            feed = {"x": x[s : s + batch_size]}
            if f is not None:
                feed["features"] = f[s : s + batch_size].numpy()
            m, sd = self.session.run(["mean", "sd"], feed)
            means.append(m)
            sds.append(sd)
        n_t = len(self.targets)
        mean = np.concatenate(means).astype(np.float64) if means else np.zeros((0, n_t))
        sd = np.concatenate(sds).astype(np.float64) if sds else np.zeros((0, n_t))
        return {k: (mean[:, i], sd[:, i]) for i, k in enumerate(self.targets)}


def _check_features(bundle: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, F)`` measures spread over the training range (from the card's network buffers),
    one of them unmeasured (NaN), for the export check."""
    net = bundle.torch_module().net
    member = net.members[0] if hasattr(net, "members") else net
    mean = member.feature_mean.double().numpy()
    sd = member.feature_sd.double().numpy()
    f = mean + sd * rng.standard_normal((n, mean.size))
    f[0, 0] = np.nan
    return f


def _segmenter_graph(network: Any) -> Any:
    """normalise -> U-Net -> sigmoid: the per-pixel part of ``Segmenter.predict``, as a module."""
    import torch

    from musclestate.roi.segment import normalise

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = network

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.net(normalise(x)))

    return Graph().eval()


class OnnxSegmenter:
    """The aponeurosis network under ONNX Runtime, a drop-in for ``Segmenter`` at inference.

    ``input_size`` overrides the letterbox size (the U-Net is fully convolutional; smaller is
    faster, see the benchmark for what it costs in accuracy).
    """

    def __init__(
        self, segmenter: Any, *, input_size: int | None = None, threads: int | None = None
    ) -> None:
        import dataclasses

        import torch

        self.card = segmenter.card
        self.config = (
            segmenter.config
            if input_size is None
            else dataclasses.replace(segmenter.config, input_size=int(input_size))
        )
        s = self.config.input_size
        example = torch.zeros(1, 1, s, s)
        graph = _segmenter_graph(segmenter.network)
        self.session = _session(_to_onnx_bytes(graph, example, ("frames", "prob"), 17), threads)

    def predict(self, frames: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
        """``(N, H, W)`` uint8 -> ``(N, H, W)`` float32 aponeurosis probability (as Segmenter)."""
        import torch

        from musclestate.roi.segment import Letterbox, from_output, to_input

        frames = np.asarray(frames)
        single = frames.ndim == 2
        if single:
            frames = frames[None]
        if frames.ndim != 3 or frames.dtype != np.uint8:
            raise InputError(f"frames must be (N, H, W) uint8, got {frames.shape} {frames.dtype}")
        box = Letterbox.fit(frames.shape[1:], self.config.input_size)
        out = np.empty(frames.shape, np.float32)
        for i in range(0, len(frames), batch_size):
            x = to_input(frames[i : i + batch_size], box).numpy()
            (prob,) = self.session.run(["prob"], {"frames": x})
            out[i : i + batch_size] = from_output(torch.from_numpy(prob), box)
        return out[0] if single else out


def export_onnx(
    bundle_path: str | Path, out: str | Path, *, opset: int = 17, n_check: int = 64, seed: int = 0
) -> ExportResult:
    """Export a bundle's estimator to ``out`` (ONNX) and check ONNX Runtime against PyTorch.

    The check feeds ``n_check`` random uint8 patch images (seeded) through both and requires
    agreement within :data:`TOLERANCE`; a larger difference is an error, and nothing is written.
    """
    import torch

    from musclestate.models.bundle import load_bundle

    bundle = load_bundle(bundle_path)
    data = estimator_onnx_bytes(bundle, opset)
    rng = np.random.default_rng(seed)
    h, w = bundle.image_size
    patches = rng.integers(0, 256, size=(n_check, bundle.in_channels, h, w), dtype=np.uint8)
    feats = None
    if bundle.feature_inputs:
        feats = _check_features(bundle, n_check, rng)
    with torch.inference_mode():
        ref = bundle.predict(patches, features=feats)
    got = OnnxEstimator(bundle, data).predict(patches, features=feats)
    atol, rtol = TOLERANCE
    worst, ok = 0.0, True
    for k in bundle.target_names:
        for a, b in zip(ref[k], got[k], strict=True):
            d = np.abs(a - b)
            worst = max(worst, float(d.max()))
            ok &= bool((d <= atol + rtol * np.abs(a)).all())
    if not ok:
        raise BundleError(
            f"ONNX Runtime disagrees with PyTorch by up to {worst:.3g} (tolerance {atol} + "
            f"{rtol} x |value|); not written",
            bundle_path,
        )
    out = Path(out)
    with atomic_file(out, suffix=".onnx") as tmp:
        tmp.write_bytes(data)
    log.info("exported %s -> %s (max |diff| %.2e)", bundle_path, out, worst)
    return ExportResult(out, n_check, worst, atol, opset)
