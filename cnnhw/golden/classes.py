"""The class of each image, from the network's output: what the accelerator's ``Argmax`` computes
(``cnnhw.gateware.small``)."""

from __future__ import annotations

import numpy as np


def classes_of(outputs: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """The class of each of ``outputs`` (one row per image, any shape after the first axis): the
    index of its largest value, the first on ties; with a single output (a binary classifier),
    1 when it is above ``threshold`` (0 for a logit, 0.5 for a probability:
    ``Graph.class_threshold``), else 0."""
    flat = np.asarray(outputs).reshape(len(outputs), -1)
    if flat.shape[1] == 1:
        return (flat[:, 0] > threshold).astype(np.int64)
    return flat.argmax(axis=1)
