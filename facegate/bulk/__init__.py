"""Bulk embedding: many photos in, one JSONL record per face out, resumable.

* :mod:`.jsonl`: the run (file order, resume, decode workers, Ray shards) and its records, on the
  shared :class:`~facegate.pipeline.Pipeline` (the CPU path);
* :mod:`.device`: the device path, every stage after decoding batched on one torch device (a GPU;
  tested on the CPU device). Not imported here: it imports torch, and only runs when asked for.
"""

from facegate.bulk.jsonl import (
    default_workers,
    embed_shard,
    embed_to_jsonl,
    embed_with_ray,
    file_key,
    iter_image_files,
    uses_device_path,
)

__all__ = [
    "default_workers", "embed_shard", "embed_to_jsonl", "embed_with_ray", "file_key", "iter_image_files",
    "uses_device_path",
]
