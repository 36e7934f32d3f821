"""A run directory rebuilt from a training checkpoint, for a model shipped before run records were kept
(issue #16: 3): config.yaml (the checkpoint's run config), metrics.csv (its per-epoch history), splits.npz
(its splits) and checkpoints/best.pt (the checkpoint itself). `deqff train CONFIG --output DIR --evaluate
test --tol 1e-4 --save` then adds test_metrics.json, and the Makefile's record rule copies the record.

    python benchmarks/record_from_checkpoint.py --checkpoint git:c936d02:models/water_deq.ckpt \\
        --output runs/water_deq_full
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import torch
import yaml

from deqff.data.formats import read
from deqff.data.splits import write_splits
from deqff.train.metrics import write_csv
from sources import read_bytes


def rebuild(checkpoint: str, output: Path) -> None:
    """Write output/{config.yaml, metrics.csv, splits.npz, checkpoints/best.pt} from `checkpoint` (a file or
    git:REV:PATH)."""
    blob = read_bytes(checkpoint)
    state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)
    history = state["train_state"]["history"]
    if not history:
        raise ValueError(f"{checkpoint} has no training history: nothing to rebuild a record from")
    run_config = state["run_config"]
    output.mkdir(parents=True, exist_ok=True)
    (output / "checkpoints").mkdir(exist_ok=True)
    (output / "config.yaml").write_text(yaml.safe_dump(run_config, sort_keys=False))
    write_csv(output / "metrics.csv", history)
    dataset = run_config["data"]["path"]
    splits = {name: indices.numpy() for name, indices in state["splits"].items()}
    write_splits(output / "splits.npz", splits, read(dataset).n_frames, dataset=dataset)
    (output / "checkpoints" / "best.pt").write_bytes(blob)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint file or git:REV:PATH")
    parser.add_argument("--output", required=True, type=Path, help="run directory to write")
    args = parser.parse_args()
    rebuild(args.checkpoint, args.output)
    print(f"wrote {args.output}: config.yaml, metrics.csv, splits.npz, checkpoints/best.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
