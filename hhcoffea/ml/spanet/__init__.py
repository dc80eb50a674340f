"""SPA-Net (seeds 000, 002, 003): SPANet's event file (:mod:`.event_info`), inputs from jets
(:mod:`.features`), HDF5 training data (:mod:`.dataset`), our torch model (:mod:`.model`) and
trainer (:mod:`.training`), ONNX export with the official interface (:mod:`.onnx_export`),
greedy decoding (:mod:`.decoding`) and validation metrics (:mod:`.metrics`).

Only :mod:`.model`, :mod:`.training` and :mod:`.onnx_export` need torch, and they import it
inside their functions or are imported only by the training and export commands.
"""

__all__: list[str] = []
