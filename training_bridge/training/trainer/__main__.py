"""`python -m training_bridge.training.trainer --dataset-dir D --output-dir O --config C.json`

Exit status: 0 trained; 2 a bad config or dataset, or a tracker configured (MLFLOW_TRACKING_URI,
WANDB_PROJECT) whose library is missing (the message on stderr); 3 stopped (cancelled, or the
launcher is gone); 1 anything else (the traceback on stderr).

Rank 0 logs every metric to metrics.jsonl, to TensorBoard event files under
<output-dir>/tensorboard/ and to the configured trackers (tracking.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from training_bridge.training.trainer.config import ConfigError, config_parse
from training_bridge.training.trainer.tracking import TrackerMissing, trackers_check

EXIT_BAD_INPUT = 2
EXIT_STOPPED = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training_bridge.training.trainer")
    parser.add_argument("--dataset-dir", required=True, type=Path)
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--config", required=True, type=Path, help="a JSON trainer config")
    parser.add_argument("--cancel-file", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    log = logging.getLogger("training_bridge.training.trainer")
    try:
        config = config_parse(json.loads(args.config.read_text()))
    except (ConfigError, OSError, json.JSONDecodeError) as exc:
        log.error("trainer.bad_config %s", exc)
        return EXIT_BAD_INPUT
    try:
        trackers_check(os.environ)
    except TrackerMissing as exc:
        log.error("trainer.tracker_missing %s", exc)
        return EXIT_BAD_INPUT

    # torch only now: a bad config is reported without paying for the import
    from training_bridge.training.trainer.data import DatasetError
    from training_bridge.training.trainer.events import Events, Stopped
    from training_bridge.training.trainer.loop import train
    from training_bridge.training.trainer.tracking import trackers_open

    rank = int(os.environ.get("RANK", "0"))
    sinks = (
        trackers_open(args.output_dir, environ=os.environ, config=config.as_json())
        if rank == 0
        else []
    )
    events = Events(args.output_dir, write=rank == 0, cancel_file=args.cancel_file, sinks=sinks)
    events.signals_install()
    outcome = "failed"
    try:
        train(config, dataset_dir=args.dataset_dir, output_dir=args.output_dir, events=events)
        outcome = "finished"
    except DatasetError as exc:
        log.error("trainer.bad_dataset %s", exc)
        return EXIT_BAD_INPUT
    except Stopped as exc:
        outcome = "stopped"
        log.warning("trainer.stopped reason=%s", exc)
        return EXIT_STOPPED
    finally:
        events.close(outcome=outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main())
