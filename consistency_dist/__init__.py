"""consistency_dist: consistency training with supervision, distributed with Ray Train and TensorFlow."""

__version__ = "0.1.0"
