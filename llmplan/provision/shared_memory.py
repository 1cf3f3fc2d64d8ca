"""The serving pod's /dev/shm: what vLLM and NCCL keep there, so how large a mount it gets.

/dev/shm is a memory-backed emptyDir (tmpfs): "files you write count against your
container's memory limit" (Kubernetes docs, Volumes, emptyDir), and its usage is capped at
the smaller of its sizeLimit and the pod's memory limits. So the mount is sized for what
the engine writes there, and the pod's memory request and limit carry that size on top of
the rest (`serving_manifests.serving_sizes`), or a tensor-parallel pod the plan said fits
is OOM-killed once its rings fill.

What lives there, per pod (one server's share of a replica):
- vLLM's shared-memory ring buffers (vllm/distributed/device_communicators/shm_broadcast.py,
  `ShmRingBuffer`: max_chunks x max_chunk_bytes, plus a byte per reader and chunk), only
  when an engine runs its workers as processes (the multiprocessing executor, tp x pp > 1;
  one GPU runs in-process): the executor's broadcast of each step to its workers
  (v1/executor/multiproc_executor.py, `rpc_broadcast_mq`: 10 chunks of
  VLLM_MQ_MAX_CHUNK_BYTES_MB, 16 MiB by default), each worker's queue of its results back
  (`worker_response_mq = MessageQueue(1, 1)`: the constructor's 10 chunks of 24 MiB, "large
  enough to accommodate grammar bitmask tensors for large batches"; 10 MiB before), and each
  tensor-parallel group's broadcaster (distributed/parallel_state.py, GroupCoordinator:
  `create_from_process_group(cpu_group, 1 << 22, 6)`, 6 chunks of 4 MiB). Counted whole: a
  chunk's pages stay once a message as large has passed through it, and the ring cycles
  through every chunk.
- NCCL's SHM transport, which carries collectives through host memory between GPUs of one
  server without peer-to-peer (transport/shm.cc: a /dev/shm/nccl-* segment per channel and
  connection holding the receiver's buffers of the three protocols, init.cc defaults: LL
  8 x 512 x 8 x 16 B, LL128 120 x 640 x 8 x 8 B, Simple 4 MiB). Each rank receives on a
  channel from at most its two neighbours (the ring's and the chain tree's within a
  server), over at most MAXCHANNELS (64 in current NCCL's src/include/device.h, 32 in
  older ones) channels: an upper bound, as NCCL's topology search decides the number at
  start-up (an 8 x RTX 4090 box's rings used 2, NVIDIA/nccl-tests#307; another box's SHM
  paths 10 and more, nccl-tests#166).
"""

from __future__ import annotations

import math

from llmplan.perf.setup import ReplicaSetup

MIB = 2**20
#: the executor's broadcast ring: 10 chunks of VLLM_MQ_MAX_CHUNK_BYTES_MB (16)
RPC_BROADCAST_BYTES = 10 * 16 * MIB
#: one worker's response ring: MessageQueue's default 10 chunks of 24 MiB
WORKER_RESPONSE_BYTES = 10 * 24 * MIB
#: a tensor-parallel group's broadcaster: 6 chunks of 4 MiB
TP_BROADCAST_BYTES = 6 * 4 * MIB
#: NCCL's receive buffers of one SHM connection on one channel: LL + LL128 + Simple
NCCL_SHM_CONNECTION_BYTES = 8 * 512 * 8 * 16 + 120 * 640 * 8 * 8 + 4 * MIB
#: NCCL's most channels (MAXCHANNELS), and the neighbours a rank receives from on each
#: within a server
NCCL_MAX_CHANNELS = 64
NCCL_SHM_PEERS = 2
#: the mount's least size: room for the small segments (NCCL's proxy state, Python's
#: multiprocessing) of a pod with none of the above, an assumption
MIN_SHM_GIB = 1


def shm_bytes(setup: ReplicaSetup) -> int:
    """Bytes vLLM's rings and NCCL's SHM transport can keep in one pod's /dev/shm."""
    engine_world = setup.attention_tp * setup.pp    # one engine's worker processes
    rings = 0
    if engine_world > 1:
        rings += setup.attention_ranks * RPC_BROADCAST_BYTES   # an executor per engine
        rings += setup.server_gpus * WORKER_RESPONSE_BYTES     # a worker per GPU
        if setup.attention_tp > 1:
            rings += setup.server_gpus // setup.attention_tp * TP_BROADCAST_BYTES
    through_host = setup.gpu.interconnect == "pcie" and not setup.gpu.peer_to_peer
    nccl = setup.server_gpus * NCCL_MAX_CHANNELS * NCCL_SHM_PEERS * NCCL_SHM_CONNECTION_BYTES \
        if setup.server_gpus > 1 and through_host else 0
    return rings + nccl


def shm_gib(setup: ReplicaSetup) -> int:
    """The pod's /dev/shm sizeLimit, whole GiB: what can be resident there, rounded up."""
    return max(MIN_SHM_GIB, math.ceil(shm_bytes(setup) / 2**30))
