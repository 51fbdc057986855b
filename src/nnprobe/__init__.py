"""nnprobe: train populations of image classifiers under controlled damage and probe them."""

__version__ = "0.1.0"
