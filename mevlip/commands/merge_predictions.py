"""Join sharded inference runs into one ``predictions.json``, checked for completeness and for one configuration.

    python inference.py ... --output_dir out --num_shards 2 --shard_index 0   # and, at once or elsewhere, index 1
    python merge_predictions.py --base_dataset_path <data> \\
        --inputs out/predictions.shard-0-of-2.json out/predictions.shard-1-of-2.json \\
        --output_file out/predictions.json

Shard ``i`` of ``N`` writes ``predictions.shard-<i>-of-<N>.json`` with its own journal and lock, so shards may
share one ``--output_dir`` (or use one each: copy each shard's files whole, journal included). Its ``.details.jsonl``
sidecar holds every record's global index, so the merge restores discovery order; it fails if a record is missing
or doubled, or if the shards' journals show different configurations. Under ``torchrun`` (see ``inference.py``)
rank 0 does this merge itself; this script is for shards run by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mevlip.cli import POSITIVE_INT, UserError, add_common_args, add_option, make_parser, run_cli, setup_logging
from mevlip.inference.run import merge_shards, plan
from mevlip.prompts import MULTI_IMAGE_MODES


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = make_parser(__doc__)
    p.add_argument("--base_dataset_path", required=True, help="the same dataset root the shards answered")
    p.add_argument("--inputs", nargs="+", required=True, help="the shards' predictions.json files")
    add_option(p, "--output_file", aliases=("--output",), required=True, help="merged predictions.json to write")
    p.add_argument("--splits", nargs="*", default=None,
                   help="the --splits the shards were run with (default: everything but training/)")
    p.add_argument("--limit", type=POSITIVE_INT, default=None,
                   help="the --limit the shards were run with (default: none)")
    p.add_argument("--multi_image", default="keep", choices=MULTI_IMAGE_MODES,
                   help="the --multi_image the shards were run with")
    add_common_args(p)
    return p


def main(argv: list[str] | None = None) -> dict:
    """Merge shard outputs; prints and returns the summary."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:  # a missing shard file, a record missing or doubled, shards of two configurations: one line
        # the shards' own folders are not inputs (as inference did not walk its --output_dir)
        outputs = [Path(f).parent for f in [*args.inputs, args.output_file]]
        summary = merge_shards(plan(args.base_dataset_path, args.splits, args.multi_image, exclude=outputs,
                                    limit=args.limit),
                               args.inputs, Path(args.output_file))
    except (OSError, ValueError) as err:
        raise UserError(str(err)) from None
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    run_cli(main)
