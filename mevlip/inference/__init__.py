"""Inference: route each FLARE question, generate with its adapter, resume, shard and merge.

* :mod:`~mevlip.inference.run` - the flow of ``docker_internvl/inference.py``: plan, route, batch by adapter,
  journal, shards and torchrun ranks, merged outputs;
* :mod:`~mevlip.inference.inputs` - model inputs identical to what LLaMA-Factory trained on;
* :mod:`~mevlip.inference.vlm` - InternVL3-hf (or the stand-in) with its LoRA adapters (imports torch);
* :mod:`~mevlip.inference.layout` - which adapter lives where: our layout or the authors' release.

Nothing is re-exported here: the function ``run`` would hide the module :mod:`mevlip.inference.run`.
"""
