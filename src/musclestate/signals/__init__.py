"""Lab signal processing (pure functions): EMG envelopes (:mod:`.emg`), alignment (:mod:`.sync`)."""

from musclestate.signals import emg, sync

__all__ = ["emg", "sync"]
