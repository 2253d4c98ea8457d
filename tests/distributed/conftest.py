"""The distributed tests run in their own pytest process per backend
(tools/run_tests.py): TensorFlow gets two logical CPU devices here, before
anything initialises its devices; JAX gets four virtual CPU devices from
``XLA_FLAGS``, which must be set before JAX is imported."""

import keras

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
