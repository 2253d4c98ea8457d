"""Wrappers around any optimizer (Lookahead, SWA) or model (SAM)."""

from keras_opts.wrappers.lookahead import Lookahead
from keras_opts.wrappers.sam import SAM
from keras_opts.wrappers.swa import SWA

__all__ = ["SAM", "SWA", "Lookahead"]
