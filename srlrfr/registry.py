"""Small name -> object registries (BasicSR style): the one source of every name.

A new FNet, SRNet, resize kernel, degradation, baseline, dataset or training loss is one module
that registers itself plus one import line in its catalog (``srlrfr.models.catalog``,
``srlrfr.data.catalog``, ``srlrfr.degradation``; a training loss is one registered class in
``srlrfr.training.losses``). The params schema's enums, the CLI's choices and the
Snakemake rules all read the names from here (``srlrfr.catalog.load_all``).
"""
from __future__ import annotations

from typing import Any, Iterator


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Any] = {}

    def register(self, name: str | None = None, obj: Any = None):
        """Register ``obj`` under ``name``; usable as ``@REG.register()`` too."""
        def add(item: Any) -> Any:
            key = name or getattr(item, "__name__", None)
            if not key:
                raise ValueError(f"{self.kind}: cannot infer a name for {item!r}")
            if key in self._items:
                raise KeyError(f"{self.kind} {key!r} is already registered")
            self._items[key] = item
            return item

        return add(obj) if obj is not None else add

    def get(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {known}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def keys(self) -> list[str]:
        return sorted(self._items)


FNETS = Registry("fnet")
SRNETS = Registry("srnet")
RESIZE_KERNELS = Registry("resize kernel")
DEGRADATION_OPS = Registry("degradation op")
DEGRADATIONS = Registry("degradation model")
GEOMETRIES = Registry("face geometry")
DATASETS = Registry("dataset")
BASELINES = Registry("baseline")
LOSSES = Registry("training loss")
