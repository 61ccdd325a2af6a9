"""tfadvser: generative black-box adversarial attacks on speech-emotion recognition models.

The public Python API (see docs/python.md; each name is documented in `tfadvser/api.py`):

    import tfadvser
    run = tfadvser.load_run("runs/synth")
    x, y = run.clips("test", 64)
    tfadvser.score(run.defence("cnn4"), run.attacker("single-cnn4-eps0.008-snr30"), x, y, run)

`import tfadvser` is instant and loads no TensorFlow (the command line reads `__version__`
for `--help`): the API's names are imported from `tfadvser.api` on first use.
"""

from tfadvser.errors import TfadvserError

__version__ = "0.1.0"

# The names `tfadvser.api` provides, imported on first attribute access (PEP 562).
_API = ("Run", "load_run", "synthesize", "prepare", "train_defences", "train_attacker",
        "reproduce", "perturb", "read_audio", "perturb_waveform", "score", "evaluate")

__all__ = ["__version__", "TfadvserError", *_API]


def __getattr__(name: str):
    if name in _API:
        # Lazily, inside the function: the API imports TensorFlow and every stage, and
        # tests/test_layout.py allows the package this one upward import only here.
        from tfadvser import api

        value = getattr(api, name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'tfadvser' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
