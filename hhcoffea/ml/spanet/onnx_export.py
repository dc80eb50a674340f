"""``hhcoffea export onnx CHECKPOINT -o model.onnx``: our checkpoint as an ONNX file with the
official SPANet export interface (SPANet's ``spanet/export.py``, without ``--input-log-transform``).

Inputs: ``Source_data`` float32 ``[batch, N, F]`` (features in event-file order, log(x+1)
already applied to the ``log`` features), ``Source_mask`` bool ``[batch, N]``; with global
inputs also ``GLOBAL_data`` float32 ``[batch, 1, G]`` (an official export also declares
``GLOBAL_mask``; globals are always present, so ours does not).
Outputs: ``<particle>_assignment_probability`` ``[batch, N, N]`` per particle,
``<particle>_detection_probability`` ``[batch]`` per particle, ``EVENT/<classification>``
``[batch, C]`` (softmax). The mean/std normalisation is inside the graph. Batch and N are
dynamic. The event file travels as metadata (``spanet_event_info``), so our models need no
separate YAML.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .training import load_checkpoint, model_from_checkpoint

__all__ = ["METADATA_DYNAMIC_JETS", "METADATA_EVENT_INFO", "METADATA_N_JETS", "export_onnx", "onnx_names"]

METADATA_EVENT_INFO = "spanet_event_info"
METADATA_N_JETS = "spanet_num_jets"
#: "1": the graph gives the same answer at any jet count (padding is masked everywhere), so a
#: pairer may run each jet multiplicity at its own N (about twice as fast at 5 jets per event)
METADATA_DYNAMIC_JETS = "spanet_dynamic_num_jets"


def onnx_names(info) -> tuple[list[str], list[str]]:
    """Input and output names of the official interface for an event file."""
    inputs = [f"{info.jet_input}_data", f"{info.jet_input}_mask"]
    if info.global_input:
        inputs += [f"{info.global_input}_data"]
    outputs = [f"{p}_assignment_probability" for p in info.particle_names]
    outputs += [f"{p}_detection_probability" for p in info.particle_names]
    outputs += [f"EVENT/{c}" for c in info.classifications]
    return inputs, outputs


def _wrapper(model, info):
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, source_data, source_mask, global_data=None):
            g = global_data[:, 0, :] if global_data is not None else None
            assignment, detection, classification = self.model(source_data, source_mask, g)
            outs = [assignment[:, p].exp() for p in range(assignment.shape[1])]
            outs += [torch.sigmoid(detection[:, p]) for p in range(detection.shape[1])]
            if classification is not None and info.classifications:
                outs.append(torch.softmax(classification, dim=-1))
            return tuple(outs)

    return Wrapped().eval()


def export_onnx(checkpoint: str | Path, output: str | Path, n_jets: int = 10, opset: int = 17) -> Path:
    """Write the ONNX file; returns its path."""
    import onnx
    import torch

    ckpt = load_checkpoint(checkpoint)
    model, info = model_from_checkpoint(ckpt)
    wrapped = _wrapper(model, info)
    inputs, outputs = onnx_names(info)
    b = 2
    example = [torch.zeros(b, n_jets, len(info.jet_features)), torch.ones(b, n_jets, dtype=torch.bool)]
    if info.global_input:
        example += [torch.zeros(b, 1, len(info.global_features))]
    dynamic = {inputs[0]: {0: "batch_size", 1: f"num_{info.jet_input}"},
               inputs[1]: {0: "batch_size", 1: f"num_{info.jet_input}"}}
    if info.global_input:
        dynamic[inputs[2]] = {0: "batch_size"}
    for name in outputs:
        dynamic[name] = {0: "batch_size", 1: f"num_{info.jet_input}", 2: f"num_{info.jet_input}"} \
            if name.endswith("assignment_probability") else {0: "batch_size"}
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, tuple(example), str(output), input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False, do_constant_folding=True)
    proto = onnx.load(str(output))
    for key, value in ((METADATA_EVENT_INFO, info.to_yaml()), (METADATA_N_JETS, str(n_jets)), (METADATA_DYNAMIC_JETS, "1"),
                       ("producer", "hhcoffea train spanet")):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(output))
    return output
