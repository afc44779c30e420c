"""`tunedeck train | runs | attach | stop | pause | resume`: start and control detached runs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

# Options and the config field each one sets: a field the user set is kept as given, the
# recipe (engine.config.recipe) chooses the others from the data, the model and the machine.
OPTION_FIELDS = (
    ("data.source", "data"), ("data.val", "val_data"), ("data.val_fraction", "val_fraction"),
    ("model", "model"), ("method", "method"), ("epochs", "epochs"),
    ("max_steps", "max_steps"), ("learning_rate", "lr"),
    ("data.limit", "limit"), ("data.columns", "columns"),
)  # fmt: skip
HUB_DATA = "ORG/NAME[:CONFIG][@REVISION][[SPLIT]]"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the run subcommands to the CLI."""
    from tui.cli.lint import add_data_options

    train = subparsers.add_parser(
        "train",
        help="start a training run as a detached background job; prints the run id",
        description=(
            "Start a LoRA / QLoRA run from a config TOML (e.g. a previous run's config.toml) "
            "and/or options. The run survives the terminal closing; follow it with "
            "`tunedeck attach RUN`."
        ),
    )
    train.add_argument("config", nargs="?", metavar="CONFIG", help="config TOML to run")
    train.add_argument("--config", dest="config_option", metavar="FILE", help="same as CONFIG")
    train.add_argument("--preset", choices=("quick", "balanced", "thorough"), help="start from")
    train.add_argument(
        "--data", metavar="PATH",
        help=f"dataset to split into train/validation: a file, or a Hugging Face Hub dataset "
        f"{HUB_DATA} (the run records the commit it read)",
    )  # fmt: skip
    train.add_argument(
        "--val-data", metavar="PATH",
        help=f"separate validation file or hub dataset ({HUB_DATA}); --data is then "
        "trained on whole",
    )  # fmt: skip
    add_data_options(train)
    train.add_argument("--val-fraction", type=float, metavar="F", help="validation share")
    train.add_argument("--model", metavar="MODEL", help="model name, directory or hub id")
    train.add_argument("--method", choices=("lora", "qlora"), help="LoRA, or QLoRA (NF4 base)")
    train.add_argument("--epochs", type=float, metavar="N", help="passes over the data")
    train.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps")
    train.add_argument("--lr", type=float, metavar="LR", help="learning rate")
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="any config field, e.g. --set lora.r=32 (repeatable)",
    )  # fmt: skip
    train.add_argument(
        "--like",
        metavar="RUN",
        help="start from RUN's configuration (its config.toml as is; --data and the other "
        "options replace what they name): the next run after `tunedeck data add / fix`",
    )
    train.add_argument("--follow", action="store_true", help="stream progress until it ends")
    train.add_argument("--json", action="store_true", help="print the run as JSON")
    train.set_defaults(handler=run_train)

    runs = subparsers.add_parser(
        "runs",
        help="list runs with their state, progress and best validation loss",
        description="List the runs under $TUNEDECK_HOME/runs, newest first.",
    )
    runs.add_argument("--json", action="store_true", help="print a JSON list of runs")
    runs.set_defaults(handler=run_list)

    attach = subparsers.add_parser(
        "attach",
        help="watch a run live: the wizard's Train screen, or text lines with --text",
        description=(
            "Open the wizard's Train screen on a run (its whole loss curve from the start, "
            "then live). With --text, or when the output is not a terminal, print its "
            "events as lines instead. Leaving either way never stops the run."
        ),
    )
    attach.add_argument("run", metavar="RUN", help="run id (or a unique prefix of it)")
    attach.add_argument(
        "--text", action="store_true", help="print events as text lines instead of the TUI"
    )
    attach.set_defaults(handler=run_attach)

    for name, text in (
        ("stop", "ask a run to save a checkpoint and stop"),
        ("pause", "pause a run at the next step boundary (checkpoint, worker exits)"),
        ("resume", "resume a paused, stopped or interrupted run from its newest checkpoint"),
    ):
        sub = subparsers.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sub.add_argument("run", metavar="RUN", help="run id (or a unique prefix of it)")
        if name == "resume":
            sub.add_argument("--follow", action="store_true", help="stream progress")
        sub.set_defaults(handler=run_control, action=name)


# ---------------------------------------------------------------------------


def _config_from_args(args: argparse.Namespace) -> tuple[Any, set[str] | None]:
    """The config the options describe, and the fields the user set (None: a config file,
    complete as written, so the recipe leaves it alone)."""
    from engine.config.build import (
        PRESETS,
        from_preset,
        load_config,
        parse_assignment,
        with_overrides,
    )

    path = args.config or args.config_option
    if args.like:
        return _like_config(args, path), None
    preset = args.preset or "balanced"
    cfg = load_config(path) if path else from_preset(preset)
    changes: dict[str, Any] = {}
    for key, attr in OPTION_FIELDS:
        value = getattr(args, attr)
        if value is not None:
            changes[key] = value
    if args.data is not None and args.val_data is not None:
        changes["data.train"] = changes.pop("data.source")  # already split: train on all
        changes["data.source"] = None
    elif args.data is not None:
        changes["data.train"] = None  # a new source replaces a config's ready-made split
        changes["data.val"] = None
    for item in args.set:
        key, value = parse_assignment(item)
        changes[key] = value
    cfg = with_overrides(cfg, **changes) if changes else cfg
    return cfg, None if path else set(changes) | set(PRESETS[preset])


def _like_config(args: argparse.Namespace, path: str | None) -> Any:
    """`--like RUN`: RUN's config as it is, with the options given (--data above all); a
    corrected copy of RUN's file keeps RUN's split (engine.loop.like)."""
    from engine.config.build import load_config, parse_assignment, with_overrides
    from engine.core.errors import TunedeckError
    from engine.loop.like import like_config
    from engine.runs.store import CONFIG_FILE, find_run

    if path:
        raise TunedeckError("--like RUN and a CONFIG file both name a configuration",
                            hint="give one of them")  # fmt: skip
    run_dir = find_run(args.like)
    if args.data is None:
        cfg = load_config(run_dir / CONFIG_FILE)
    else:
        cfg, keep = like_config(run_dir, args.data)
        if keep:
            print(f"keeping run {run_dir.name}'s split: {args.data} is a corrected copy of "
                  "its file", file=sys.stderr)  # fmt: skip
    changes: dict[str, Any] = {
        key: getattr(args, attr)
        for key, attr in OPTION_FIELDS
        if key != "data.source" and getattr(args, attr) is not None
    }
    changes.update(parse_assignment(item) for item in args.set)
    return with_overrides(cfg, **changes) if changes else cfg


def run_train(args: argparse.Namespace) -> int:
    """Create and start a run; print its id, the values tunedeck chose and its warnings."""
    from engine.model.resolve import ensure_model_available
    from engine.runs.store import recipe_choices, start_run

    cfg, user_set = _config_from_args(args)
    ensure_model_available(cfg.model)  # no network, wrong name, gated: said here, not later
    info = start_run(cfg, keep=user_set)
    if args.json:
        print(json.dumps({**info.to_json(), "recipe": recipe_choices(info.dir)}))
    else:
        print(info.id)
    if not args.follow:
        for line in _creation_lines(info.dir):
            print(line, file=sys.stderr)
        print(f"started in the background; follow it with `tunedeck attach {info.id}`",
              file=sys.stderr)  # fmt: skip
        return 0
    return follow(info.dir)


def _creation_lines(run_dir: Any) -> list[str]:
    """The lines `follow` would print for what create_run recorded (recipe, warnings)."""
    from engine.core.events import EVENTS_FILE, read_events

    events, _ = read_events(run_dir / EVENTS_FILE, 0)
    lines = [format_event(e) for e in events if e.get("type") in ("recipe", "warning")]
    return [line for line in lines if line]


def run_list(args: argparse.Namespace) -> int:
    """Print the runs, newest first."""
    from engine.runs.store import list_runs

    infos = list_runs()
    if args.json:
        print(json.dumps([info.to_json() for info in infos]))
        return 0
    if not infos:
        print("no runs yet; start one with `tunedeck train --data FILE`")
        return 0
    print(f"{'RUN':<23} {'STATE':<22} {'STEP':>11} {'BEST VAL':>9}  AGE")
    for info in infos:
        row = info.to_json()
        steps = f"{row['step']}/{row['max_steps'] or '?'}"
        best = f"{row['best_val_loss']:.4f}" if row["best_val_loss"] is not None else "-"
        print(f"{info.id:<23} {info.state:<22} {steps:>11} {best:>9}  {_age(info.created)}")
    return 0


def _age(created: float) -> str:
    seconds = max(0.0, time.time() - created) if created else 0.0
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def run_attach(args: argparse.Namespace) -> int:
    """Open the Train screen on a run (a terminal), or replay and follow it as text."""
    from engine.runs.store import find_run

    run_dir = find_run(args.run)
    if args.text or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return follow(run_dir)
    from tui.app import run_app

    return run_app(run=str(run_dir))


def run_control(args: argparse.Namespace) -> int:
    """stop / pause / resume."""
    from engine.runs.store import find_run, request, resume_run

    run_dir = find_run(args.run)
    if args.action == "resume":
        info = resume_run(run_dir)
        print(f"{info.id}: resumed (worker started)")
        return follow(run_dir) if args.follow else 0
    info = request(run_dir, args.action)
    print(f"{info.id}: {args.action} requested; the worker acts at its next step boundary")
    return 0


# ---------------------------------------------------------------------------


def follow(run_dir: Any) -> int:
    """Print a run's events as lines until it ends; Ctrl-C detaches without stopping it."""
    from engine.runs.store import follow_events, run_info

    try:
        for event in follow_events(run_dir):
            line = format_event(event)
            if line:
                print(line, flush=True)
    except KeyboardInterrupt:
        print(f"\ndetached; the run goes on (`tunedeck attach {run_dir.name}`)", file=sys.stderr)
        return 0
    state = run_info(run_dir).state
    return 0 if state in ("completed", "stopped", "paused") else 1


def format_event(event: dict[str, Any]) -> str | None:
    """One terminal line for an event, or None for events not worth a line."""
    kind = event.get("type")
    if kind == "metric" and event.get("split") == "train":
        parts = [f"step {event.get('step')}", f"epoch {event.get('epoch', 0):.2f}",
                 f"loss {_num(event.get('loss'))}"]  # fmt: skip
        if event.get("lr") is not None:
            parts.append(f"lr {event['lr']:.2e}")
        if event.get("tokens_per_s") is not None:
            parts.append(f"{event['tokens_per_s']:.0f} tok/s")
        if event.get("eta_s") is not None:
            parts.append(f"eta {_duration(event['eta_s'])}")
        return "  ".join(parts)
    if kind == "metric" and event.get("split") == "val":
        return f"step {event.get('step')}  val_loss {_num(event.get('loss'))}"
    if kind == "state":
        detail = f": {event['error']}" if event.get("error") else ""
        hint = f"\n  hint: {event['hint']}" if event.get("hint") else ""
        return f"[{event.get('state')}]{detail}{hint}"
    if kind == "data":
        lines = [f"[data] {event.get('train_examples')} train / "
                 f"{event.get('val_examples')} validation examples"]  # fmt: skip
        lines += [f"  warning: {w}" for w in event.get("warnings") or []]
        return "\n".join(lines)
    if kind == "recipe":
        return format_recipe(event.get("choices") or [])
    if kind == "warning" and event.get("message"):
        return f"[warning] {event['message']}"
    if kind == "best":
        return f"  best so far: val_loss {_num(event.get('val_loss'))} at step {event.get('step')}"
    if kind == "kept" and event.get("rule") == "last":
        return f"  adapter/ now holds step {event.get('step')} (keep_adapter = last)"
    if kind == "timing":
        return format_timing(event)
    if kind in ("warning", "early_stop", "resume", "runtime", "control"):
        fields = {k: v for k, v in event.items() if k not in ("type", "time")}
        return f"[{kind}] " + " ".join(f"{k}={v}" for k, v in fields.items())
    return None


def format_timing(event: dict[str, Any]) -> str | None:
    """Where the training time went: steps against validation, checkpoints, kept adapters."""
    total = event.get("total_s")
    if not isinstance(total, int | float) or total <= 0:
        return None
    parts = [("validation", "validation_s"), ("checkpoints", "checkpoint_s"),
             ("kept adapter", "adapter_s")]  # fmt: skip
    shares = [f"{name} {100 * (event.get(key) or 0) / total:.0f} %" for name, key in parts]
    steps = 100 * (event.get("steps_s") or 0) / total
    return f"[time] {_duration(total)}: {steps:.0f} % in optimizer steps; " + ", ".join(shares)


def format_recipe(choices: list[dict[str, Any]]) -> str:
    """The values tunedeck chose, one line each, with the reason."""
    lines = ["[recipe] chosen for this data and model (set a value to override it):"]
    for choice in choices:
        value = choice.get("value")
        shown = f"{value:g}" if isinstance(value, float) else "off" if value is None else str(value)
        lines.append(f"  {choice.get('field')} = {shown}  ({choice.get('reason')})")
    return "\n".join(lines)


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else str(value)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
