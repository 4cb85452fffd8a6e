"""maskdetect: is each face's mask worn correctly, wrongly, or not at all?"""

from maskdetect.labels import CLASSES

__all__ = ["CLASSES", "__version__"]
__version__ = "0.1.0"
