"""The calf phantom: a synthetic cohort with ground truth, written as a lab would record it.

A Hill-type muscle model (:mod:`~musclestate.phantom.mechanics`) drives the image geometry
(:mod:`~musclestate.phantom.geometry`), a fast scatterer-based ultrasound model
(:mod:`~musclestate.phantom.imaging`) turns it into B-mode frames, and a protocol like the seed
paper's (:mod:`~musclestate.phantom.protocol`) drives the muscle. :func:`simulate_cohort` writes the
cohort (video, DAQ and EMG CSV files with a frame trigger, ground truth, label masks, an import
manifest); :func:`sample_labelled_frames` gives frames and masks for ROI training;
:func:`audit_cohort` measures every cue of muscle state in a cohort beside its published range.
"""

from musclestate.phantom.audit import audit_cohort
from musclestate.phantom.cohort import PhantomConfig, sample_labelled_frames, simulate_cohort
from musclestate.phantom.protocol import ProtocolConfig

__all__ = [
    "PhantomConfig",
    "ProtocolConfig",
    "audit_cohort",
    "sample_labelled_frames",
    "simulate_cohort",
]
