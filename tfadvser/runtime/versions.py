"""The versions of the libraries a result was produced with, recorded in metadata and reports."""
from __future__ import annotations

import platform


def library_versions() -> dict[str, str]:
    """{package: version} for tfadvser, Python, TensorFlow, tensorflow-io, Keras, librosa, numpy."""
    import keras
    import librosa
    import numpy as np
    import tensorflow as tf
    import tensorflow_io

    from tfadvser import __version__

    return {"tfadvser": __version__, "python": platform.python_version(),
            "tensorflow": tf.__version__, "tensorflow_io": tensorflow_io.__version__,
            "keras": keras.__version__, "librosa": librosa.__version__, "numpy": np.__version__}
