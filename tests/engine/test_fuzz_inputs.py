"""Fuzzing the parsers a user (or a foreign version) can feed: config TOML, CLI arguments,
events.jsonl. No unhandled exception; failures are messages naming the file and place.
(Dataset files are fuzzed in test_lint_fuzz.py.)"""

from __future__ import annotations

import json
import tomllib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config.build import ConfigError, load_config
from engine.core.events import metric_history, read_events, read_status
from tui.cli import main

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CONFIG_KEYS = ["model", "method", "learning_rate", "epochs", "max_steps", "lora", "data",
               "micro_batch_size", "scheduler", "packing", "seed", "nonsense"]  # fmt: skip
toml_values = st.one_of(
    st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.booleans(),
    st.text(max_size=12).map(json.dumps), st.just("[1, 2]"), st.just("{ r = -1 }"),
)  # fmt: skip


@FUZZ
@given(st.text(max_size=300))
def test_any_text_as_config_is_a_config_error(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("cfg") / "run.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        try:
            keys = list(tomllib.loads(text))
        except tomllib.TOMLDecodeError:
            keys = []
        # A syntax error names the file (and line); a bad key or value names the key.
        assert str(path) in exc.message or any(key in exc.message for key in keys), exc.message


@FUZZ
@given(st.dictionaries(st.sampled_from(CONFIG_KEYS), toml_values, max_size=5))
def test_plausible_configs_load_or_say_which_key(tmp_path_factory, entries) -> None:
    path = tmp_path_factory.mktemp("cfg") / "run.toml"
    path.write_text("".join(f"{k} = {v}\n" for k, v in entries.items()), encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        named = [k for k in entries if k in exc.message] or [str(path)]
        assert any(name in exc.message for name in named), exc.message


@FUZZ
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_foreign_events_never_break_a_reader(tmp_path_factory, lines) -> None:
    run_dir = tmp_path_factory.mktemp("run")
    (run_dir / "events.jsonl").write_bytes(b"\n".join(lines))
    events, offset = read_events(run_dir / "events.jsonl")
    assert all(isinstance(e, dict) and isinstance(e["type"], str) for e in events)
    metric_history(events)
    (run_dir / "status.json").write_bytes(b"".join(lines))
    read_status(run_dir)


@FUZZ
@given(
    st.lists(
        st.sampled_from(
            [
                "{",
                "}",
                '"type": "metric"',
                '"step": "x"',
                '"loss": null',
                '"from_step": [1]',
                ",",
                '"type": "resume"',
            ]
        ),
        max_size=8,
    )
)
def test_wrongly_typed_fields_in_events_are_tolerated(tmp_path_factory, parts) -> None:
    run_dir = tmp_path_factory.mktemp("run")
    line = "{" + ", ".join(p for p in parts if ":" in p) + "}"
    (run_dir / "events.jsonl").write_text(line + "\n" + '{"type": "resume", "from_step": "3"}\n')
    events, _ = read_events(run_dir / "events.jsonl")
    metric_history(events)


SUBCOMMANDS = ["lint", "split", "train", "runs", "attach", "stop", "pause", "resume", "eval",
               "export", "models", "--json", "--out", "--set", "--max-steps", "x=1", "-1",
               "nope", "..", "--follow", "--help"]  # fmt: skip


COMMANDS = ["lint", "split", "train", "runs", "attach", "stop", "pause", "resume", "eval",
            "export", "models"]  # fmt: skip


@FUZZ
@given(
    st.sampled_from(COMMANDS),
    st.lists(st.one_of(st.sampled_from(SUBCOMMANDS), st.text(max_size=8)), max_size=5),
)
def test_random_command_lines_end_in_an_exit_code(capsys, command: str, rest: list[str]) -> None:
    # A subcommand first: with none, `tunedeck` opens the wizard. Never start real work:
    # no --follow, and training is capped at zero steps (refused by the config).
    argv = [command] + [a for a in rest if a not in ("--follow", "--prepare")]
    if command in ("train", "eval", "lint"):
        argv += ["--max-steps", "0"] if command == "train" else ["--help"]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
        code = exc.code
    assert isinstance(code, int)
    err = capsys.readouterr().err
    assert "Traceback" not in err
