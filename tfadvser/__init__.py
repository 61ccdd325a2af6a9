"""tfadvser: generative black-box adversarial attacks on speech-emotion recognition models."""

__version__ = "0.1.0"
