"""A literate PyTorch library that explains and implements the training process"""

__version__ = "0.0.1"

from .optimizer import *
from .decay import *
from .momentum import *
from .rmsprop import *
from .adam import *
from .trust import *
from .lookahead import *
from .after_adam import *
from .matrices import *
from .callback import *
from .checkpoint import *
from .learner import *
from .schedule import *
from .training_callbacks import *
from .distributed import *
from .export import *
from .lab import *
from .demo import *
