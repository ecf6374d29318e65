"""mtal_ray: multi-task active learning for pre-trained Transformers, distributed on Ray."""

from mtal_ray.errors import MtalError

__all__ = ["MtalError", "__version__"]
__version__ = "0.1.0"
