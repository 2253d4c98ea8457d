"""The optimizers: one module per algorithm, each a subclass of
:class:`keras_opts._core.base.Optimizer` with its update written once as a
kernel.

Written by tools/generate.py from the modules of this package: run it, do
not edit this file.
"""

from keras_opts.optimizers.adabelief import AdaBelief
from keras_opts.optimizers.adadelta import Adadelta
from keras_opts.optimizers.adagrad import Adagrad
from keras_opts.optimizers.adam import Adam
from keras_opts.optimizers.adam_mini import AdamMini
from keras_opts.optimizers.adamw import AdamW
from keras_opts.optimizers.adan import Adan
from keras_opts.optimizers.ademamix import AdEMAMix
from keras_opts.optimizers.adopt import ADOPT
from keras_opts.optimizers.lars import LARS
from keras_opts.optimizers.madgrad import MADGRAD
from keras_opts.optimizers.mars import MARS
from keras_opts.optimizers.muon import Muon
from keras_opts.optimizers.muon_family import AdaMuon, NorMuon
from keras_opts.optimizers.nadam import Nadam
from keras_opts.optimizers.novograd import NovoGrad
from keras_opts.optimizers.prodigy import Prodigy
from keras_opts.optimizers.psgd_kron import PSGDKron
from keras_opts.optimizers.radam import RAdam
from keras_opts.optimizers.rmsprop import RMSprop
from keras_opts.optimizers.schedule_free_adamw import ScheduleFreeAdamW
from keras_opts.optimizers.schedule_free_radam import ScheduleFreeRAdam
from keras_opts.optimizers.schedule_free_sgd import ScheduleFreeSGD
from keras_opts.optimizers.sgd import SGD
from keras_opts.optimizers.shampoo import Shampoo
from keras_opts.optimizers.soap import SOAP
from keras_opts.optimizers.yogi import Yogi

__all__ = [
    "ADOPT",
    "LARS",
    "MADGRAD",
    "MARS",
    "SGD",
    "SOAP",
    "AdaBelief",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamMini",
    "AdaMuon",
    "AdamW",
    "Adan",
    "AdEMAMix",
    "Muon",
    "Nadam",
    "NorMuon",
    "NovoGrad",
    "Prodigy",
    "PSGDKron",
    "RAdam",
    "RMSprop",
    "ScheduleFreeAdamW",
    "ScheduleFreeRAdam",
    "ScheduleFreeSGD",
    "Shampoo",
    "Yogi",
]
