"""Sharded parameters (FSDP2, ``torch.distributed.fsdp.fully_shard``): sums over all shards of a tensor list.

Under FSDP2 every parameter, gradient and optimizer buffer is a ``DTensor`` whose rank holds one shard
(``Shard(0)``: a block of rows, uneven where the rows do not divide, 7 -> 4 + 3). Element-wise work
(the perturbation ``theta + rho d``, its restore, ``b``) is local to the shard, but SAM's norms
``||g||``, ASAM's ``||T g||`` and the dot products of GSAM, LookSAM and the hyper step
``<a, b>`` are sums over every element of the model: each rank sums its shards and one
``all_reduce(SUM)`` over the mesh dimensions that shard the tensors adds the partial sums, so that
every rank gets the same global value, as one process would on the whole model. Replicated mesh
dimensions (HSDP's outer one) hold copies and are not summed. Plain tensors pass through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.distributed as dist
from torch import Tensor

try:
    from torch.distributed.tensor import DTensor
except ImportError:  # torch built without distributed
    DTensor = None


def is_sharded(tensor: Tensor) -> bool:
    """Whether ``tensor`` is a ``DTensor`` (a parameter or gradient of an FSDP2 model)."""
    return DTensor is not None and isinstance(tensor, DTensor)


def local(tensors: Sequence[Tensor]) -> list[Tensor]:
    """This rank's shards (views: writing to them writes the ``DTensor``); plain tensors as they are."""
    return [t.to_local() if is_sharded(t) else t for t in tensors]


def _sharding_key(tensor: Tensor) -> tuple | None:
    """The mesh and the mesh dimensions over which the shards of ``tensor`` add up; None for a plain tensor."""
    if not is_sharded(tensor):
        return None
    dims = tuple(i for i, placement in enumerate(tensor.placements) if placement.is_shard() or placement.is_partial())
    return (tensor.device_mesh, dims) if dims else None


def sum_over_shards(partial_sum: Callable[..., Tensor], *lists: Sequence[Tensor]) -> Tensor:
    """``partial_sum(*lists)`` over whole tensors, where ``partial_sum`` is a sum over the elements of its lists.

    ``partial_sum`` gets this rank's shards (aligned lists, grouped by how they are sharded) and
    returns a 0-dim tensor; the groups' sums are added over the ranks that hold the other shards.
    """
    groups: dict[tuple | None, list[int]] = {}
    for i, tensor in enumerate(lists[0]):
        groups.setdefault(_sharding_key(tensor), []).append(i)
    total = None
    for key, indices in groups.items():
        value = partial_sum(*[local([tensors[i] for i in indices]) for tensors in lists])
        if key is not None:
            mesh, dims = key
            for dim in dims:
                dist.all_reduce(value, group=mesh.get_group(dim))
        total = value if total is None else total + value.to(total)
    return total


def contains_sharded(tensors: Sequence[Tensor]) -> bool:
    return any(is_sharded(t) for t in tensors)


def like(value: Tensor, param: Tensor) -> Tensor:
    """``value`` (a whole tensor, or this rank's shard of one as a checkpoint keeps it) as a copy shaped like
    ``param``: on its device and dtype, and a ``DTensor`` sharded as ``param`` where that is one."""
    if not is_sharded(param):
        return value.to(param).clone()
    if is_sharded(value):
        value = value.to_local()
    shard = param.to_local()
    return DTensor.from_local(
        value.to(shard).clone(), param.device_mesh, param.placements, shape=param.shape, stride=param.stride()
    )
