"""The small core every optimizer shares: the base class (``base``) with
its weight decay (``weight_decay``) and gradient features (``gradients``),
the two ways an update runs (``kernels``: one variable through
``keras.ops``; ``foreach``: all at once through ``torch._foreach_*``),
shared math (``formulas``), argument checks (``checks``), configuration
(``config``) and the one module that touches private Keras API
(``keras_api``)."""
