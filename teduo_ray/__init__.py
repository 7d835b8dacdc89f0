"""teduo-ray: TEDUO (offline language-conditioned agents from unlabeled data) on Ray.

Importing this package is deliberately cheap: ray, torch, minigrid and transformers are
imported inside the stages that need them, so `teduo --help` answers instantly.
"""

__version__ = "0.1.0"
