"""training stage: estimators (``cv.py``, ``module.py``, ``data.py``) and the aponeurosis
segmenter (``segmenter.py``), one Lightning module family and one fit loop (``module.py``)."""
