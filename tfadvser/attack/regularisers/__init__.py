"""The continual-learning regularisers of lifelong attackers (`--regulariser`), one module
per method, each a `base.Regulariser`; `get` looks one up by name.

    ewc         the paper's (Kirkpatrick et al. 2017), maths in `attack/ewc.py`    `ewc`
    online-ewc  one running Fisher (Schwarz et al. 2018)                           `online_ewc`
    si          Synaptic Intelligence (Zenke et al. 2017)                          `si`
    mas         Memory Aware Synapses (Aljundi et al. 2018)                        `mas`
    lwf         Learning without Forgetting (Li & Hoiem 2017), LwF-style          `lwf`

Their names are also in `config.REGULARISERS` (pure Python, for the command line's
choices); `tests/test_continual.py` checks the two agree.
"""
from __future__ import annotations

from tfadvser.attack.regularisers.base import Regulariser
from tfadvser.attack.regularisers.ewc import EWC
from tfadvser.attack.regularisers.lwf import LwF
from tfadvser.attack.regularisers.mas import MAS
from tfadvser.attack.regularisers.online_ewc import OnlineEWC
from tfadvser.attack.regularisers.si import SI
from tfadvser.config import REGULARISERS
from tfadvser.errors import TfadvserError

REGISTRY: dict[str, Regulariser] = {r.name: r for r in (EWC(), OnlineEWC(), SI(), MAS(), LwF())}


def get(name: str) -> Regulariser:
    """The regulariser called `name`. Raises TfadvserError naming the choices otherwise."""
    if name not in REGISTRY:
        raise TfadvserError(f"unknown regulariser {name!r}; choose one of {', '.join(REGULARISERS)}")
    return REGISTRY[name]
