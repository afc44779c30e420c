"""The Data screen's Stats tab: the dataset's numbers beside its token-length histogram.

Token lengths need the model's tokenizer, which the TUI never imports: `count` runs the
survey it is given (a child process, `tui.token_survey`) in a worker thread, shows the
progress on the histogram, and posts `TokensCounted` or `TokensFailed` for the screen,
which keeps the wizard state and decides what to show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.worker import get_current_worker

from engine.data.lint.linter import LintReport
from tui.token_survey import TokenSurvey
from tui.widgets.dataset_stats import DatasetStats
from tui.widgets.length_histogram import LengthHistogram

SurveyTokens = Callable[[Path, str, int, Callable[[str, float], None]], TokenSurvey]
"""(path, model, max_seq_len, progress(stage, fraction)) -> TokenSurvey; may raise."""


class StatsPane(Horizontal):
    """DatasetStats (#data-stats) and LengthHistogram (#length-histogram), side by side."""

    @dataclass
    class TokensProgressed(Message):
        """A stage of the token count; only the latest matters."""

        stage: str
        fraction: float

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, StatsPane.TokensProgressed)

    @dataclass
    class TokensCounted(Message):
        """Token lengths (and the lint report with token checks) arrived."""

        path: Path
        survey: TokenSurvey

    @dataclass
    class TokensFailed(Message):
        """Token lengths could not be counted; `reason` says why."""

        path: Path
        reason: str

    def compose(self) -> ComposeResult:
        yield DatasetStats(id="data-stats")
        yield LengthHistogram(id="length-histogram")

    def show_report(self, report: LintReport, tokens: TokenSurvey | None) -> None:
        """The report's numbers (with token percentiles once they are counted)."""
        self.query_one(DatasetStats).show(report, tokens)

    def show_survey(self, survey: TokenSurvey) -> None:
        """Draw the survey's token lengths against its max_seq_len."""
        sample = ", a sample" if survey.sampled else ""
        model = Path(survey.model).name or survey.model
        self.query_one(LengthHistogram).show(
            list(survey.lengths.values()), survey.max_seq_len, f"tokens · {model}{sample}"
        )

    def note(self, text: str) -> None:
        """No lengths to draw: say why instead (counting, failed)."""
        self.query_one(LengthHistogram).note(text)

    def count(self, survey_tokens: SurveyTokens, path: Path, model: str, max_seq_len: int) -> None:
        """Count the tokens of `path` with `model`'s tokenizer, in a worker."""
        self.note(f"counting tokens with {model} …")
        self._count(survey_tokens, path, model, max_seq_len)

    @work(thread=True, exclusive=True, group="tokens", exit_on_error=False)
    def _count(self, survey_tokens: SurveyTokens, path: Path, model: str, max_seq_len: int) -> None:
        """Token lengths in a child process (the tokenizer needs transformers)."""
        try:
            survey = survey_tokens(
                path,
                model,
                max_seq_len,
                lambda s, f: self.post_message(self.TokensProgressed(s, f)),
            )
        except Exception as exc:  # any failure: lint stands without token checks
            reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            self.post_message(self.TokensFailed(path, reason))
        else:
            if not get_current_worker().is_cancelled:
                self.post_message(self.TokensCounted(path, survey))

    @on(TokensProgressed)
    def _show_progress(self, message: TokensProgressed) -> None:
        message.stop()
        self.note(f"{message.fraction:.0%} {message.stage} …")
