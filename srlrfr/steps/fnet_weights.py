"""Rule fnet_weights: an FNet's weights as a plain state dict, with their provenance.

How the weights are obtained is the FNet's own registry entry
(``FNetSpec.prepare_weights``); this step only records where they came from
and checks that the file loads into the architecture.
"""
from __future__ import annotations

from pathlib import Path

from ..atomic import write_json
from ..catalog import load_all
from ..registry import FNETS

NAME = "fnet-weights"
HELP = "fetch / convert an FNet's weights to a .pt state dict"


def fnet_weights(fnet: str, source: str, out, *, cache: str = "data/downloads", provenance=None) -> Path:
    # deferred: loads torch
    from ..models.fnet import load_fnet
    load_all()
    spec = FNETS.get(fnet)
    if spec.prepare_weights is None:
        raise ValueError(f"FNet {fnet!r} declares no prepare_weights in its registry entry")
    out = Path(out)
    info = spec.prepare_weights(source, out, Path(cache))
    if provenance:
        write_json(provenance, {"fnet": fnet, "requested": source, **info, "out": str(out)})
    load_fnet(fnet, out, "cpu")  # fail here, not in training, if the file does not fit
    return out


def add_arguments(p) -> None:
    p.add_argument("--fnet", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--provenance", help="JSON recording the weights' source and its hash")


def main(args, cfg) -> None:
    fnet_weights(args.fnet, cfg["fnets"][args.fnet]["weights"], args.out, cache=cfg["data"]["cache"],
                 provenance=args.provenance)
