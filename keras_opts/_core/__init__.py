"""The small core every optimizer shares: the base class (``base``), the two
ways an update runs (``kernels``), shared math (``formulas``), argument
checks (``checks``) and the one module that touches private Keras API
(``keras_api``)."""
