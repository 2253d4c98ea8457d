"""One rank of the torch.distributed test: ``python -m
tests.distributed.torch_worker RANK WORLD INIT_FILE OUT.npz``, or with
``WORLD = 1`` and no process group, the single-process run on the global
batch.

As in Keras' guide to distributed training on the torch backend, the
Keras model is wrapped in ``torch.nn.parallel.DistributedDataParallel``,
whose backward pass all-reduces (averages) the gradients over the ranks;
each rank's keras_opts optimizer then applies them with ``apply``. Every
registry optimizer trains its own fresh model, ``common.STEPS`` steps,
each rank on its half of each global batch.
"""

from __future__ import annotations

import os
import sys

os.environ["KERAS_BACKEND"] = "torch"


def main(rank: int, world: int, init_file: str, out: str) -> None:
    import keras
    import numpy as np
    import torch
    import torch.distributed as dist

    from tests.distributed import common

    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group(
            "gloo",
            init_method=f"file://{init_file}",
            rank=rank,
            world_size=world,
        )
    x, y = common.data()
    results = {}
    for spec in common.SPECS:
        model = common.model()
        optimizer = common.optimizer(spec)
        variables = model.trainable_variables
        optimizer.build(variables)
        network = model
        if world > 1:
            network = torch.nn.parallel.DistributedDataParallel(model)
        for step in range(common.STEPS):
            batch = slice(step * common.BATCH, (step + 1) * common.BATCH)
            xs, ys = x[batch], y[batch]
            shard = len(xs) // world
            local = slice(rank * shard, (rank + 1) * shard)
            prediction = network(torch.as_tensor(xs[local]))
            loss = torch.mean((prediction - torch.as_tensor(ys[local])) ** 2)
            loss.backward()
            grads = [v.value.grad for v in variables]
            optimizer.apply(grads, variables)
            for v in variables:
                v.value.grad = None
        for i, w in enumerate(common.weights(model)):
            results[f"{spec.name}/weight{i}"] = w
        for path, value in common.optimizer_state(optimizer).items():
            results[f"{spec.name}/{path}"] = value
        keras.backend.clear_session()
    np.savez(out, **results)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
