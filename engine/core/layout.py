"""Every file and folder of a run directory, by name (docs/architecture.md shows the tree).

$TUNEDECK_HOME/runs/<run-id>/
  config.toml        the frozen config, with the recipe's reasons as comments
  events.jsonl       everything the worker and evaluations say, one JSON object a line
  status.json        the worker's state, replaced atomically
  control.jsonl      requests to the worker (stop, pause, checkpoint, evaluate)
  worker.lock        flock held by the live worker
  worker.log         the worker's stdout and stderr
  data/              train.jsonl, val.jsonl, manifest.json (the split, with its source)
  checkpoints/       checkpoint-<step>/, each complete once its marker is written
  adapter/           the kept adapter: best by validation loss, or the last (PEFT files)
  eval/              options, lock and log of the evaluation, the run's primary metric
                     (primary.json); the validation split's
                     results (each system's answers, losses, probes, judge verdicts,
                     review marks, summary); test-<stem>-<hash>/: the same for a test file
"""

from __future__ import annotations

CONFIG_FILE = "config.toml"
EVENTS_FILE = "events.jsonl"
STATUS_FILE = "status.json"
CONTROL_FILE = "control.jsonl"
LOCK_FILE = "worker.lock"
LOG_FILE = "worker.log"

DATA_DIR = "data"
TRAIN_FILE = "train.jsonl"
VAL_FILE = "val.jsonl"
MANIFEST_FILE = "manifest.json"

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_MARKER = "tunedeck-complete.json"
ADAPTER_DIR = "adapter"

EVAL_DIR = "eval"
EVAL_LOCK_FILE = "eval.lock"
EVAL_LOG_FILE = "eval.log"
EVAL_OPTIONS_FILE = "options.json"
PRIMARY_FILE = "primary.json"
SUMMARY_FILE = "summary.json"
LOSS_FILE = "loss.jsonl"
PROBES_FILE = "probes.jsonl"
JUDGE_FILE = "judge.jsonl"
REVIEW_FILE = "review.jsonl"
AB_FILE = "ab.jsonl"
SET_FILE = "set.json"
SET_EXAMPLES = "examples.jsonl"
