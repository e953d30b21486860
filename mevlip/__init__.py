"""ME-VLIP reproduced: the library behind the data preparation, training, routing, inference and evaluation scripts.

The shared ground, one module per concern:

* :mod:`mevlip.tasks` - the seven FLARE task types and every spelling of them;
* :mod:`mevlip.flare` - FLARE on-disk data: discovery, record validation and keys, image paths, safe zip extraction;
* :mod:`mevlip.answers` - answer formats: parsing and canonical writing (shared by inference and evaluation);
* :mod:`mevlip.prompts` - the one prompt renderer (shared by data preparation and inference), after
  :mod:`mevlip.presets` (``paper``, ``ours``, ``original``);
* :mod:`mevlip.question_options` - option lists in every FLARE style (mini-FLARE writes them, the router reads them).

Then one package per stage, in pipeline order (each uses the shared ground and the stages above it):

* :mod:`mevlip.synth` - mini-FLARE, a synthetic dataset in the FLARE format whose images carry their answers;
* :mod:`mevlip.prepare` - data preparation: FLARE -> LLaMA-Factory ShareGPT rows and the router set;
* :mod:`mevlip.training` - LLaMA-Factory recipes, the stand-in model, adapter training;
* :mod:`mevlip.router` - the GLiClass task classifier: training, leave-one-dataset-out, routing;
* :mod:`mevlip.inference` - routed, batched, resumable inference and the model with its adapters;
* :mod:`mevlip.metrics` - every FLARE metric; :mod:`mevlip.baselines` - the constant baseline;
* :mod:`mevlip.demo` - ``make demo`` and its report.
"""

__version__ = "0.1.0"
