"""Machine-learning core shared by ML pairers and scorers: cached ONNX Runtime sessions
(:mod:`hhcoffea.ml.session`) and the DNN classifier's network, training and ONNX writer
(:mod:`hhcoffea.ml.dnn`).

Nothing here is imported by the framework unless a job uses an ML plugin: torch and
onnxruntime load only inside these modules' functions.
"""

__all__: list[str] = []
