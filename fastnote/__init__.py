__version__ = "0.0.1"

from .sgd import *
from .demo import *
