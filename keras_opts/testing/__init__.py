"""Independent NumPy float64 references for checking keras_opts optimizers.

Nothing here imports keras or any keras_opts optimizer: each oracle is a
transcription of its paper's algorithm, so that tests compare two
implementations written separately.
"""
