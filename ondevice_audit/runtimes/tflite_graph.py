"""What a TFLite file holds, read from its flatbuffer without an interpreter: its ops and its inputs and outputs.

TFLM asks which ops a model needs (a microcontroller build includes only those kernels); the streaming
detector asks whether a model keeps state between calls (resource variables: ``VAR_HANDLE``, ``READ_VARIABLE``,
``ASSIGN_VARIABLE``), as streaming wake-word models do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ondevice_audit.runtimes.interface import ModelLoadError

__all__ = ["STATE_OPS", "TFLiteGraph", "read_graph"]

STATE_OPS = frozenset({"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"})
"""Ops of a model that keeps state in resource variables between calls."""


@dataclass(frozen=True)
class TFLiteGraph:
    ops: tuple[str, ...]
    inputs: int
    outputs: int
    output_names: tuple[str, ...] = ()


def read_graph(model_path: Path, reader: str = "TFLM") -> TFLiteGraph:
    """Distinct ops of every subgraph in order of first use (builtin names, custom codes), and I/O counts."""
    from ai_edge_litert import schema_py_generated as schema

    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    try:
        model = schema.Model.GetRootAs(model_path.read_bytes(), 0)
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if builtin == schema.BuiltinOperator.CUSTOM:
                codes.append((code.CustomCode() or b"CUSTOM").decode())
            else:
                codes.append(names.get(builtin, f"BUILTIN_{builtin}"))
        ops: dict[str, None] = {}
        for s in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(s)
            for o in range(subgraph.OperatorsLength()):
                ops[codes[subgraph.Operators(o).OpcodeIndex()]] = None
        main = model.Subgraphs(0)
        outputs = tuple((main.Tensors(main.Outputs(j)).Name() or b"").decode() for j in range(main.OutputsLength()))
        return TFLiteGraph(tuple(ops), main.InputsLength(), main.OutputsLength(), outputs)
    except Exception as exc:  # a corrupt flatbuffer raises struct.error, IndexError, TypeError...
        raise ModelLoadError(f"{model_path}: not a TFLite model {reader} can load ({type(exc).__name__})") from None


def is_stateful(model_path: Path) -> bool:
    return bool(STATE_OPS.intersection(read_graph(model_path, "LiteRT").ops))
