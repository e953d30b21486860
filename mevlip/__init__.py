"""ME-VLIP reproduced: the library behind the data preparation, training, routing, inference and evaluation scripts.

One module per concern:

* :mod:`mevlip.tasks` - the seven FLARE task types and every spelling of them;
* :mod:`mevlip.flare` - FLARE on-disk data: discovery, record validation and keys, image paths, safe zip extraction;
* :mod:`mevlip.answers` - answer formats: parsing and canonical writing (shared by inference and evaluation);
* :mod:`mevlip.prompts` - the one prompt renderer (shared by data preparation and inference);
* :mod:`mevlip.synth` - mini-FLARE, a synthetic dataset in the FLARE format whose images carry their answers.
"""

__version__ = "0.1.0"
