"""Safe loading of checkpoint files.

Every checkpoint is read with ``torch.load(weights_only=True)``: downloaded
pickles are untrusted, and the restricted unpickler refuses anything but
tensors and plain containers, so a crafted file cannot run code on load.
"""
from __future__ import annotations

import os
import pickle
import pickletools
from itertools import chain
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..damaged import DamagedFileError, damaged, writing_step

StateDict = dict[str, torch.Tensor]

_SHOW = 5  # keys shown per category in mismatch messages


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, unsafe, or does not fit the model."""


class DamagedCheckpointError(CheckpointError, DamagedFileError):
    """A checkpoint that is truncated or garbled (not a crafted pickle): delete it and make it again."""


def _damaged(path: Path, exc: Exception, step: str | None) -> DamagedCheckpointError:
    return DamagedCheckpointError(str(damaged(path, _reason(exc), step)))


def load_checkpoint(path: str | os.PathLike, hint: str = "", step: str | None = None) -> Any:
    """Weights-only ``torch.load`` on CPU; clear errors for missing, damaged or unsafe files.

    A file naming a global the safe unpickler refuses is a crafted (or foreign) pickle:
    refused for safety. Anything else unreadable (random bytes, a cut download) is DAMAGED:
    it has to be deleted and made again (``step``: the rule that writes it, else from the path).
    """
    path = Path(path)
    if not path.is_file():
        how = f" Get it with: {hint}" if hint else ""
        raise FileNotFoundError(f"checkpoint not found: {path}.{how}")
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except MemoryError:
        raise
    except OSError as exc:
        if exc.errno is not None:  # the disk's (permission, I/O error), not the file's
            raise
        raise _damaged(path, exc, step) from None
    except Exception as exc:  # zip reader or unpickler on garbage: RuntimeError, EOFError, IndexError, ...
        if isinstance(exc, pickle.UnpicklingError) and ("GLOBAL" in str(exc) or _calls_code(path)):
            raise _refused(path, exc, step) from None  # never retried unsafely
        raise _damaged(path, exc, step) from None


def _refused(path: Path, exc: Exception, step: str | None) -> CheckpointError:
    step = step or writing_step(path)
    again = f"rerun step {step}" if step else "use a file from the official source"
    return CheckpointError(
        f"refused to load {path}: it holds objects other than tensors and plain containers "
        f"({_reason(exc)}), and unpickling those can run code. Do not load it with weights_only=False; "
        f"delete it and {again}")


_CODE_OPS = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"}


def _calls_code(path: Path) -> bool:
    """True when ``path`` starts with a well-formed pickle that imports or calls something (parsed, never run).

    Random bytes almost never do: they fail the parse, or lack the protocol byte that pickles start with.
    """
    try:
        with open(path, "rb") as fh:
            if fh.read(1) != b"\x80":
                return False
            fh.seek(0)
            return bool(_CODE_OPS & {op.name for op, _, _ in pickletools.genops(fh)})
    except Exception:  # any parse error: not a pickle
        return False


def _reason(exc: Exception) -> str:
    """The informative line of torch's long error (e.g. 'Unsupported operand 149'), without its
    advice to retry with weights_only=False, which must never be taken for a downloaded file."""
    noise = ("weights_only", "Please file an issue", "Check the documentation", "Unpickler(")
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    detail = [ln for ln in lines if not any(n in ln for n in noise)]
    text = (detail or ["unreadable"])[0]
    return text.split(". ")[0].rstrip(".")


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str = "module.") -> StateDict:
    """Drop a leading ``prefix`` (DataParallel's ``module.``) from every key that has it."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def extract_state_dict(obj: Any, source: str | os.PathLike) -> StateDict:
    """A raw state_dict, or the one under ``state_dict`` / ``model``, checked to hold tensors."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source}: expected a state_dict (or a dict with a 'state_dict'/'model' "
                              f"entry), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: {len(bad)} state_dict entries are not tensors, e.g. {bad[:_SHOW]}")
    return strip_prefix(obj)


def load_state_dict_file(path: str | os.PathLike, hint: str = "") -> StateDict:
    """Read a state_dict from ``path`` safely (weights-only, CPU, ``module.`` stripped)."""
    return extract_state_dict(load_checkpoint(path, hint), path)


def _listing(items: list[str]) -> str:
    more = f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return f"{len(items)}: " + ", ".join(items[:_SHOW]) + more


def load_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str | os.PathLike) -> nn.Module:
    """``model.load_state_dict`` strictly, with a readable error naming what does not fit.

    A model built on the meta device (no memory, no random init: see ``build_empty``)
    takes the file's tensors themselves."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k} file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = [f"{source} does not fit {type(model).__name__}:"]
        if missing:
            parts.append(f"missing keys {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_listing(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches {_listing(shapes)}")
        raise CheckpointError("\n  ".join(parts))
    on_meta = any(t.is_meta for t in expected.values())
    model.load_state_dict(state_dict, strict=True, assign=on_meta)
    left = [name for name, t in chain(model.named_parameters(), model.named_buffers()) if t.is_meta]
    if left:
        raise CheckpointError(f"{source}: {type(model).__name__} was built empty (meta device) but "
                              f"{_listing(left)} are not in its state_dict; build it with real tensors")
    return model


def build_empty(build, *args, **kwargs):
    """``build(*args, **kwargs)`` on the meta device: the module tree without allocating or
    randomly initialising weights that ``load_into`` replaces anyway (seconds for a large net).
    Import the registries before: a module first imported in here would make its tensors meta."""
    with torch.device("meta"):
        return build(*args, **kwargs)
